#include "vmm/vhost_user/vhost_user_backend.h"

#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>
#include <future>

#include "vmm/devices/virtio/block/block_device.h"
#include "vmm/devices/virtio/vsock/vsock_device.h"

namespace ember::vmm::vhost_user {

std::string device_type_name(virtio::DeviceType type) {
  switch (type) {
    case virtio::DeviceType::kNet:
      return "net";
    case virtio::DeviceType::kBlock:
      return "blk";
    case virtio::DeviceType::kRng:
      return "rng";
    case virtio::DeviceType::kBalloon:
      return "balloon";
    case virtio::DeviceType::kVsock:
      return "vsock";
  }
  return "device" + std::to_string(static_cast<uint32_t>(type));
}

namespace {

std::string backend_name(const std::string& name, const virtio::VirtioDevice* device) {
  if (!name.empty()) return name;
  if (!device) throw common::Error("vhost-user backend: no device");
  return device_type_name(device->device_type());
}

}  // namespace

VhostUserBackend::VhostUserBackend(std::string socket_path,
                                   std::unique_ptr<virtio::VirtioDevice> device, Logger& logger,
                                   Metrics& metrics, std::string name)
    : socket_path_(std::move(socket_path)),
      device_(std::move(device)),
      logger_(logger),
      metrics_(metrics),
      name_(backend_name(name, device_.get())),
      counters_(metrics, "vhost_user_" + name_) {
  // QEMU's vhost-user-vsock-device serves the event queue itself.
  if (auto* vsock = dynamic_cast<virtio::VsockDevice*>(device_.get()))
    vsock->set_event_queue_in_frontend(true);
}

VhostUserBackend::~VhostUserBackend() { stop(); }

void VhostUserBackend::start() {
  {
    std::lock_guard lock(mutex_);
    if (started_) throw common::Error("vhost-user " + name_ + ": started twice");
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path_.empty() || socket_path_.size() >= sizeof addr.sun_path) {
    throw common::Error("vhost-user " + name_ + ": socket path \"" + socket_path_ +
                        "\" is empty or longer than " + std::to_string(sizeof addr.sun_path - 1) +
                        " bytes");
  }
  std::memcpy(addr.sun_path, socket_path_.c_str(), socket_path_.size());

  common::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) common::throw_errno("vhost-user " + name_ + ": create socket for " + socket_path_);
  // A socket file left by a previous run (nobody accepts on it) is replaced;
  // a live socket or anything else at the path is somebody else's and stays.
  struct stat st {};
  if (::lstat(socket_path_.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      throw common::Error("vhost-user " + name_ + ": cannot listen on " + socket_path_ +
                          ": the path exists and is not a socket");
    }
    common::UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (probe && ::connect(probe.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      throw common::Error("vhost-user " + name_ + ": cannot listen on " + socket_path_ +
                          ": another process is listening there");
    }
    ::unlink(socket_path_.c_str());
  }
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    common::throw_errno("vhost-user " + name_ + ": bind " + socket_path_);
  }
  if (::listen(fd.get(), 4) < 0) {
    int err = errno;
    ::unlink(socket_path_.c_str());
    throw common::SystemError(err, "vhost-user " + name_ + ": listen on " + socket_path_);
  }
  unlink_on_stop_ = true;
  listen_ = std::move(fd);
  loop_.add(listen_.get(), EPOLLIN, [this](uint32_t) { on_listen_readable(); });
  start_thread();
  LOG_INFO(logger_, "vhost-user " + name_ + ": listening on " + socket_path_);
}

void VhostUserBackend::start(common::UniqueFd connected_socket) {
  {
    std::lock_guard lock(mutex_);
    if (started_) throw common::Error("vhost-user " + name_ + ": started twice");
  }
  if (!connected_socket)
    throw common::Error("vhost-user " + name_ + ": no connected socket to serve");
  adopt(std::move(connected_socket));
  start_thread();
}

void VhostUserBackend::start_thread() {
  loop_.add(tasks_event_.fd(), EPOLLIN, [this](uint32_t) { run_tasks(); });
  std::lock_guard lock(mutex_);
  started_ = true;
  accepting_ = true;
  thread_ = std::thread([this] { run(); });
  thread_id_ = thread_.get_id();
}

void VhostUserBackend::stop() {
  std::lock_guard stop_lock(stop_mutex_);
  {
    std::lock_guard lock(mutex_);
    if (!started_) {
      // Never started: nothing runs, but a start(fd) may have adopted a socket.
      connection_.reset();
      return;
    }
  }
  loop_.stop();
  if (thread_.joinable()) {
    if (std::this_thread::get_id() == thread_.get_id()) {
      throw common::Error("vhost-user " + name_ + ": stop() called from the backend's own thread");
    }
    thread_.join();
  }
  if (listen_) {
    loop_.remove(listen_.get());
    listen_.reset();
  }
  if (unlink_on_stop_) {
    ::unlink(socket_path_.c_str());
    unlink_on_stop_ = false;
  }
}

void VhostUserBackend::run() {
  // Thread names are at most 15 characters.
  std::string thread_name = ("ember-vu-" + name_).substr(0, 15);
  ::pthread_setname_np(::pthread_self(), thread_name.c_str());
  // Writes to a socket whose peer went away (a vsock connection's unix
  // socket, the frontend) must fail with EPIPE, not kill the process: a
  // blocked SIGPIPE raised by this thread's own write stays pending instead.
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  ::pthread_sigmask(SIG_BLOCK, &pipe, nullptr);

  for (;;) {
    try {
      loop_.run();
      break;
    } catch (const std::exception& e) {
      // A device or connection handler threw: the connection cannot be
      // trusted any more, the backend can.
      LOG_ERROR(logger_,
                "vhost-user " + name_ + ": unexpected error, dropping the connection: " + e.what());
      drop_connection(e.what(), true);
    }
  }
  drop_connection("backend stopped", false);
  std::deque<Task> left;
  {
    std::lock_guard lock(mutex_);
    accepting_ = false;
    left.swap(tasks_);
  }
  for (Task& task : left) task(false);
}

void VhostUserBackend::on_listen_readable() {
  common::UniqueFd fd(::accept4(listen_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
  if (!fd) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      LOG_ERROR(logger_, "vhost-user " + name_ + ": accept on " + socket_path_ + ": " +
                             common::errno_text(errno));
    }
    return;
  }
  if (connection_) {
    LOG_WARN(logger_, "vhost-user " + name_ + ": refused a second frontend on " + socket_path_ +
                          ": one frontend per device");
    return;
  }
  adopt(std::move(fd));
}

void VhostUserBackend::adopt(common::UniqueFd socket) {
  uint64_t generation = ++connection_generation_;
  int fd = socket.get();
  connection_ = std::make_unique<FrontendConnection>(
      std::move(socket), *device_, loop_, logger_, counters_, "vhost-user " + name_,
      [this, generation](const std::string& reason) {
        if (generation == connection_generation_) drop_connection_later(reason);
      },
      device_active_);
  loop_.add(fd, EPOLLIN | EPOLLRDHUP, [this](uint32_t events) { on_connection_readable(events); });
  counters_.connections.inc();
  connection_count_.fetch_add(1);
  connected_ = true;
  LOG_INFO(logger_, "vhost-user " + name_ + ": frontend connected");
}

void VhostUserBackend::on_connection_readable(uint32_t events) {
  if (!connection_) return;
  try {
    if (!connection_->handle_readable()) {
      drop_connection("frontend disconnected", false);
      return;
    }
    if (events & (EPOLLHUP | EPOLLERR)) {
      // Hung up with a message half sent (a complete one would have been
      // handled above, a clean hang-up reported as closed).
      drop_connection("frontend hung up in the middle of a message", true);
      return;
    }
  } catch (const ProtocolError& e) {
    counters_.protocol_errors.inc();
    drop_connection(e.what(), true);
    return;
  }
}

void VhostUserBackend::drop_connection(const std::string& reason, bool error) {
  if (!connection_) return;
  if (error) {
    LOG_ERROR(logger_, "vhost-user " + name_ + ": dropping the frontend connection: " + reason);
  } else {
    LOG_INFO(logger_, "vhost-user " + name_ + ": " + reason);
  }
  loop_.remove(connection_->socket_fd());
  ++connection_generation_;
  connection_.reset();  // resets the device, unmaps memory, closes every fd
  counters_.disconnects.inc();
  connected_ = false;
  device_active_ = false;
}

void VhostUserBackend::drop_connection_later(const std::string& reason) {
  // Called from inside a handler of the connection itself: destroy it once
  // that handler has returned.
  uint64_t generation = connection_generation_;
  counters_.protocol_errors.inc();
  post([this, generation, reason](bool run) {
    if (run && generation == connection_generation_) drop_connection(reason, true);
  });
}

bool VhostUserBackend::post(Task task) {
  {
    std::lock_guard lock(mutex_);
    if (!accepting_) return false;
    tasks_.push_back(std::move(task));
  }
  tasks_event_.signal();
  return true;
}

void VhostUserBackend::run_tasks() {
  tasks_event_.consume();
  std::deque<Task> tasks;
  {
    std::lock_guard lock(mutex_);
    tasks.swap(tasks_);
  }
  for (Task& task : tasks) task(true);
}

void VhostUserBackend::update_block(const DriveUpdate& update) {
  auto* block = dynamic_cast<virtio::BlockDevice*>(device_.get());
  if (!block) {
    throw common::Error("vhost-user " + name_ + ": update of drive \"" + update.drive_id +
                        "\": the backend serves a " + device_type_name(device_->device_type()) +
                        " device, not a block device");
  }
  auto apply = [this, block, update] {
    bool was_active = connection_ && connection_->device_active();
    block->update(update);  // announces the change itself while active
    if (update.path_on_host && connection_ && !was_active) connection_->notify_config_change();
  };
  std::thread::id loop_thread;
  {
    std::lock_guard lock(mutex_);
    loop_thread = thread_id_;
  }
  if (std::this_thread::get_id() == loop_thread) {
    apply();
    return;
  }
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> result = done->get_future();
  bool posted = post([done, apply](bool run) {
    if (!run) {
      done->set_exception(
          std::make_exception_ptr(common::Error("the backend stopped before the update ran")));
      return;
    }
    try {
      apply();
      done->set_value();
    } catch (...) {
      done->set_exception(std::current_exception());
    }
  });
  if (!posted) {
    std::lock_guard lock(mutex_);
    if (started_)
      throw common::Error("vhost-user " + name_ + ": update of drive \"" + update.drive_id +
                          "\": the backend is stopped");
    // Not started yet: nothing runs concurrently, apply here.
    apply();
    return;
  }
  try {
    result.get();
  } catch (const common::Error& e) {
    throw common::Error("vhost-user " + name_ + ": update of drive \"" + update.drive_id +
                        "\": " + e.what());
  }
}

}  // namespace ember::vmm::vhost_user
