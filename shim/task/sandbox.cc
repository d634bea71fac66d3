#include "shim/task/sandbox.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "proto/ttrpc/status.h"
#include "vmm/common/error.h"

namespace ember::shim {

namespace v1 = ember::agent::v1;

namespace {

uint64_t disk_bytes(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) < 0) common::throw_errno("stat drive " + path);
  if (S_ISBLK(st.st_mode)) {
    common::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    uint64_t size = 0;
    if (fd && ::ioctl(fd.get(), BLKGETSIZE64, &size) == 0) return size;
    return 0;
  }
  return static_cast<uint64_t>(st.st_size) / 512 * 512;
}

ttrpc::CallOptions timeout(std::chrono::milliseconds t) {
  ttrpc::CallOptions o;
  o.timeout = t;
  return o;
}

}  // namespace

Sandbox::Sandbox(SandboxOptions options, std::unique_ptr<Hypervisor> hypervisor, ShimLog& log)
    : options_(std::move(options)), hypervisor_(std::move(hypervisor)), log_(log) {}

Sandbox::~Sandbox() { stop(); }

size_t Sandbox::boot(const RootfsDisk& first, ExitCallback on_exit, OomCallback on_oom) {
  on_exit_ = std::move(on_exit);
  on_oom_ = std::move(on_oom);
  VmSpec spec = options_.vm;
  spec.name = options_.name;
  spec.drives.clear();
  for (uint32_t i = 0; i <= options_.spare_slots; ++i) {
    Slot slot;
    slot.id = "slot" + std::to_string(i);
    slot.placeholder = spec.vm_dir + "/" + slot.id + ".spare";
    // A placeholder per slot: distinct files have distinct serials. 1 MiB,
    // sparse: the guest sees a small empty disk until a container needs it.
    {
      std::ofstream f(slot.placeholder, std::ios::binary | std::ios::trunc);
      if (!f) common::throw_errno("create spare drive " + slot.placeholder);
    }
    if (::truncate(slot.placeholder.c_str(), 1 << 20) < 0) common::throw_errno("size spare drive " + slot.placeholder);
    slot.used = i == 0;
    spec.drives.push_back({slot.id, i == 0 ? first.path : slot.placeholder, i == 0 && first.read_only});
    slots_.push_back(std::move(slot));
  }
  hypervisor_->on_exit([this](const VmExitInfo& info) {
    {
      std::lock_guard lock(mutex_);
      exit_ = info;
    }
    exited_.store(true);
    // Wakes every blocked agent call (WaitProcess, WaitEvent): the guest is gone.
    {
      std::lock_guard lock(mutex_);
      if (agent_) agent_->connection().close();
    }
    if (!stopping_.load()) {
      log_.error("vm exited", {{"vm", options_.name}, {"code", info.code}, {"reason", info.reason}});
    }
    if (on_exit_) on_exit_(info);
  });
  auto t0 = std::chrono::steady_clock::now();
  hypervisor_->start(spec);
  booted_.store(true);
  wait_for_agent();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  log_.info("vm ready", {{"vm", options_.name}, {"backend", hypervisor_->backend_name()},
                         {"vmm_pid", hypervisor_->vmm_pid()}, {"boot_ms", ms}});
  events_ = std::thread([this] { event_loop(); });
  return 0;
}

void Sandbox::wait_for_agent() {
  auto deadline = std::chrono::steady_clock::now() + options_.boot_timeout;
  std::string last_error;
  auto dialer = agent::AgentClient::hybrid_vsock_dialer(hypervisor_->vsock_uds_path(), kAgentVsockPort,
                                                        std::chrono::milliseconds(2000));
  while (std::chrono::steady_clock::now() < deadline) {
    if (exited_.load()) {
      auto info = exit_info();
      throw common::Error("vm " + options_.name + " exited during boot (" + (info ? info->reason : "") + ")" +
                          hypervisor_->diagnostics());
    }
    try {
      auto client = std::make_shared<agent::AgentClient>(dialer);
      v1::PingResponse pong = client->api().Ping(v1::PingRequest(), timeout(std::chrono::seconds(5)));
      {
        std::lock_guard lock(mutex_);
        agent_ = std::move(client);
      }
      log_.debug("agent answered", {{"vm", options_.name}, {"agent_version", pong.agent_version()}});
      // The VM may have died between the check above and now.
      if (exited_.load()) {
        std::lock_guard lock(mutex_);
        agent_->connection().close();
      }
      return;
    } catch (const std::exception& e) {
      last_error = e.what();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  throw common::Error("vm " + options_.name + ": the guest agent did not answer within " +
                      std::to_string(options_.boot_timeout.count()) + " ms (last error: " + last_error + ")" +
                      hypervisor_->diagnostics());
}

void Sandbox::event_loop() {
  ::pthread_setname_np(::pthread_self(), "ember-events");
  uint64_t after = 0;
  while (!stopping_.load() && !exited_.load()) {
    try {
      v1::WaitEventRequest request;
      request.set_after_sequence(after);
      request.set_timeout_ms(0);
      v1::WaitEventResponse reply = agent()->api().WaitEvent(request);
      if (reply.sequence() == 0) continue;
      after = reply.sequence();
      if (reply.has_oom() && on_oom_) on_oom_(reply.oom().container_id());
    } catch (const std::exception& e) {
      if (stopping_.load() || exited_.load()) break;
      log_.warn("agent event stream", {{"vm", options_.name}, {"error", e.what()}});
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
  }
}

size_t Sandbox::attach(const RootfsDisk& disk) {
  if (!alive()) throw common::Error("vm " + options_.name + " is not running");
  size_t index = 0;
  {
    std::lock_guard lock(mutex_);
    for (index = 0; index < slots_.size() && slots_[index].used; ++index) {
    }
    if (index == slots_.size()) {
      throw common::Error("vm " + options_.name + ": no free drive slot for another container (" +
                          std::to_string(slots_.size()) + " slots; raise vm.spare_drive_slots)");
    }
    slots_[index].used = true;
  }
  try {
    hypervisor_->update_drive(slots_[index].id, disk.path);
    v1::BlockDeviceChangedRequest request;
    request.set_serial(block_serial(disk.path));
    request.set_expected_size_bytes(disk_bytes(disk.path));
    request.set_timeout_ms(10000);
    agent()->api().BlockDeviceChanged(request, timeout(std::chrono::seconds(20)));
  } catch (...) {
    release(index);
    throw;
  }
  log_.info("drive attached", {{"vm", options_.name}, {"slot", slots_[index].id}, {"path", disk.path}});
  return index;
}

void Sandbox::release(size_t slot) {
  std::string id, placeholder;
  {
    std::lock_guard lock(mutex_);
    if (slot >= slots_.size() || !slots_[slot].used) return;
    id = slots_[slot].id;
    placeholder = slots_[slot].placeholder;
  }
  if (alive()) {
    try {
      hypervisor_->update_drive(id, placeholder);
    } catch (const std::exception& e) {
      // The slot stays taken: it still holds the old file.
      log_.warn("release drive slot", {{"slot", id}, {"error", e.what()}});
      return;
    }
  }
  std::lock_guard lock(mutex_);
  slots_[slot].used = false;
}

std::shared_ptr<agent::AgentClient> Sandbox::agent() {
  auto unavailable = [&] {
    return ttrpc::StatusError(ttrpc::Code::kUnavailable, "vm " + options_.name + " is not running");
  };
  std::shared_ptr<agent::AgentClient> client;
  {
    std::lock_guard lock(mutex_);
    client = agent_;
  }
  if (!client || exited_.load() || stopping_.load()) throw unavailable();
  if (!client->connection().closed()) return client;
  std::lock_guard redial(redial_mutex_);
  {
    std::lock_guard lock(mutex_);
    if (agent_ != client && agent_ && !agent_->connection().closed()) return agent_;  // another thread re-dialed
  }
  if (exited_.load() || stopping_.load()) throw unavailable();
  auto fresh = std::make_shared<agent::AgentClient>(agent::AgentClient::hybrid_vsock_dialer(
      hypervisor_->vsock_uds_path(), kAgentVsockPort, std::chrono::milliseconds(5000)));
  log_.warn("agent connection re-dialed", {{"vm", options_.name}});
  std::lock_guard lock(mutex_);
  if (exited_.load() || stopping_.load()) {
    fresh->connection().close();
    throw unavailable();
  }
  agent_ = fresh;
  return fresh;
}

common::UniqueFd Sandbox::open_stream(const std::string& container_id, const std::string& exec_id,
                                      agent::StreamKind kind) {
  return agent()->open_stream(container_id, exec_id, kind, std::chrono::seconds(10));
}

std::optional<VmExitInfo> Sandbox::exit_info() const {
  std::lock_guard lock(const_cast<std::mutex&>(mutex_));
  return exit_;
}

void Sandbox::pause() { hypervisor_->pause(); }

void Sandbox::resume() { hypervisor_->resume(); }

void Sandbox::stop() {
  if (stopping_.exchange(true)) {
    if (events_.joinable()) events_.join();
    return;
  }
  {
    std::lock_guard lock(mutex_);
    // Closed, not destroyed: other threads may still hold a reference.
    if (agent_) agent_->connection().close();
  }
  hypervisor_->stop();
  if (events_.joinable()) events_.join();
  std::lock_guard lock(mutex_);
  for (const auto& slot : slots_) ::unlink(slot.placeholder.c_str());
}

}  // namespace ember::shim
