#include "shim/testing/fake_vm.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "guest-agent/agent/client/agent_client.h"
#include "guest-agent/agent/stream_preamble.h"
#include "proto/ttrpc/socket.h"
#include "proto/ttrpc/status.h"
#include "shim/rootfs/rootfs.h"
#include "vmm/common/error.h"

namespace ember::shim::testing {

namespace v1 = ember::agent::v1;
using ttrpc::Code;
using ttrpc::StatusError;

namespace {

void send_all(int fd, const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    ssize_t n = ::send(fd, s.data() + done, s.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

std::vector<std::string> args_of(const std::string& json_text, bool whole_spec) {
  auto j = nlohmann::json::parse(json_text);
  const auto& process = whole_spec ? j.at("process") : j;
  return process.at("args").get<std::vector<std::string>>();
}

std::string join_words(const std::vector<std::string>& args) {
  std::string out;
  for (size_t i = 1; i < args.size(); ++i) out += (i > 1 ? " " : "") + args[i];
  return out + "\n";
}

}  // namespace

FakeAgent::FakeAgent(std::string uds_path, std::function<std::vector<std::string>()> drive_serials)
    : uds_path_(std::move(uds_path)), drive_serials_(std::move(drive_serials)) {}

FakeAgent::~FakeAgent() { stop(); }

void FakeAgent::start() {
  ttrpc::ServerOptions options;
  options.require_same_uid = false;
  options.shutdown_grace = std::chrono::milliseconds(100);
  server_ = std::make_unique<ttrpc::Server>(options);
  server_->register_service(*this);
  listener_ = ttrpc::listen_unix(uds_path_);
  acceptor_ = std::thread([this] { accept_loop(); });
}

void FakeAgent::accept_loop() {
  while (!stopping_.load()) {
    pollfd p{listener_.get(), POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    common::UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!fd) continue;
    std::lock_guard lock(mutex_);
    connection_threads_.emplace_back([this, f = std::move(fd)]() mutable { handle_connection(std::move(f)); });
  }
}

void FakeAgent::handle_connection(common::UniqueFd fd) {
  try {
    // Firecracker's hybrid vsock: the host names the guest port first.
    std::string connect = agent::read_line(fd.get(), std::chrono::seconds(5), "CONNECT");
    if (connect != "CONNECT 1024") return;
    send_all(fd.get(), "OK 1073741824\n");
    char first = 0;
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) return;
    if (::recv(fd.get(), &first, 1, MSG_PEEK) != 1) return;
    if (first != 'E') {
      server_->serve_connection(std::move(fd));
      return;
    }
    agent::StreamPreamble preamble =
        agent::parse_stream_preamble(agent::read_line(fd.get(), std::chrono::seconds(5), "preamble"));
    std::lock_guard lock(mutex_);
    auto it = procs_.find({preamble.container_id, preamble.exec_id});
    if (it == procs_.end()) {
      send_all(fd.get(), "ERROR no such process\n");
      return;
    }
    send_all(fd.get(), "OK\n");
    auto& proc = *it->second;
    switch (preamble.kind) {
      case agent::StreamKind::kStdin: proc.in = std::move(fd); break;
      case agent::StreamKind::kStdout: proc.out = std::move(fd); break;
      case agent::StreamKind::kStderr: proc.err = std::move(fd); break;
    }
    changed_.notify_all();
  } catch (const std::exception&) {
  }
}

void FakeAgent::stop() {
  if (stopping_.exchange(true)) return;
  if (server_) server_->shutdown();
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mutex_);
    for (auto& [key, p] : procs_) {
      for (auto* fd : {&p->in, &p->out, &p->err}) {
        if (*fd) ::shutdown(fd->get(), SHUT_RDWR);
      }
      if (p->runner.joinable()) threads.push_back(std::move(p->runner));
    }
    changed_.notify_all();
  }
  for (auto& t : threads) t.join();
  if (acceptor_.joinable()) acceptor_.join();
  {
    std::lock_guard lock(mutex_);
    threads = std::move(connection_threads_);
  }
  for (auto& t : threads) t.join();
  std::lock_guard lock(mutex_);
  procs_.clear();
  listener_.reset();
  ::unlink(uds_path_.c_str());
}

FakeAgent::ProcPtr FakeAgent::find(const std::string& c, const std::string& e) {
  auto it = procs_.find({c, e});
  if (it == procs_.end()) throw StatusError(Code::kNotFound, "process " + c + "/" + e + " not found");
  return it->second;
}

void FakeAgent::set_frozen(bool frozen) {
  std::lock_guard lock(mutex_);
  frozen_ = frozen;
  changed_.notify_all();
}

void FakeAgent::gate() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return !frozen_ || stopping_.load(); });
}

std::vector<std::string> FakeAgent::containers() const {
  std::lock_guard lock(mutex_);
  return containers_;
}

std::string FakeAgent::last_update_json() const {
  std::lock_guard lock(mutex_);
  return last_update_;
}

std::pair<uint32_t, uint32_t> FakeAgent::last_resize() const {
  std::lock_guard lock(mutex_);
  return last_resize_;
}

int FakeAgent::block_changes() const {
  std::lock_guard lock(mutex_);
  return block_changes_;
}

v1::CreateContainerResponse FakeAgent::CreateContainer(Ctx&, const v1::CreateContainerRequest& req) {
  gate();
  auto serials = drive_serials_();
  const std::string& serial = req.rootfs().upper().serial();
  if (std::find(serials.begin(), serials.end(), serial) == serials.end()) {
    throw StatusError(Code::kInternal, "no block device has serial \"" + serial + "\"");
  }
  std::lock_guard lock(mutex_);
  if (procs_.count({req.container_id(), ""})) throw StatusError(Code::kAlreadyExists, req.container_id());
  auto p = std::make_shared<Proc>();
  p->container_id = req.container_id();
  p->args = args_of(req.spec_json(), true);
  p->stdio = req.stdio();
  p->pid = next_pid_++;
  procs_[{req.container_id(), ""}] = p;
  containers_.push_back(req.container_id());
  v1::CreateContainerResponse reply;
  reply.set_pid(p->pid);
  return reply;
}

v1::ExecProcessResponse FakeAgent::ExecProcess(Ctx&, const v1::ExecProcessRequest& req) {
  gate();
  std::lock_guard lock(mutex_);
  find(req.container_id(), "");
  if (procs_.count({req.container_id(), req.exec_id()})) throw StatusError(Code::kAlreadyExists, req.exec_id());
  auto p = std::make_shared<Proc>();
  p->container_id = req.container_id();
  p->exec_id = req.exec_id();
  p->args = args_of(req.process_json(), false);
  p->stdio = req.stdio();
  p->pid = next_pid_++;
  procs_[{req.container_id(), req.exec_id()}] = p;
  return {};
}

v1::StartProcessResponse FakeAgent::StartProcess(Ctx&, const v1::StartProcessRequest& req) {
  gate();
  std::lock_guard lock(mutex_);
  auto p = find(req.container_id(), req.exec_id());
  if (p->started) throw StatusError(Code::kFailedPrecondition, "already started");
  p->started = true;
  p->runner = std::thread([this, p] { run(p); });
  v1::StartProcessResponse reply;
  reply.set_pid(p->pid);
  return reply;
}

void FakeAgent::run(ProcPtr p) {
  const std::string cmd = p->args.empty() ? "" : p->args[0];
  auto stream = [&](common::UniqueFd Proc::*member) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, std::chrono::seconds(5), [&] { return (p.get()->*member).valid() || stopping_.load(); });
    return (p.get()->*member).get();
  };
  if (cmd == "echo") {
    send_all(stream(&Proc::out), join_words(p->args));
    finish(p, 0, false);
  } else if (cmd == "stderr") {
    send_all(stream(&Proc::err), join_words(p->args));
    finish(p, 0, false);
  } else if (cmd == "exit") {
    finish(p, static_cast<uint32_t>(std::stoul(p->args.at(1))), false);
  } else if (cmd == "cat") {
    int in = stream(&Proc::in);
    int out = stream(&Proc::out);
    char buf[4096];
    while (!stopping_.load()) {
      {
        std::lock_guard lock(mutex_);
        if (p->signal) break;
      }
      pollfd pfd{in, POLLIN, 0};
      if (::poll(&pfd, 1, 50) <= 0) continue;
      ssize_t n = ::read(in, buf, sizeof buf);
      if (n <= 0) break;
      send_all(out, std::string(buf, static_cast<size_t>(n)));
    }
    std::unique_lock lock(mutex_);
    int sig = p->signal;
    lock.unlock();
    if (stopping_.load()) return;
    finish(p, sig ? 128 + static_cast<uint32_t>(sig) : 0, false);
  } else if (cmd == "sleep") {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return p->signal != 0 || stopping_.load(); });
    int sig = p->signal;
    lock.unlock();
    // A guest that vanished reports nothing.
    if (sig == 0) return;
    finish(p, 128 + static_cast<uint32_t>(sig), false);
  } else if (cmd == "oom") {
    {
      std::lock_guard lock(mutex_);
      v1::WaitEventResponse event;
      event.set_sequence(next_sequence_++);
      event.mutable_oom()->set_container_id(p->container_id);
      events_.push_back(event);
      changed_.notify_all();
    }
    finish(p, 137, true);
  } else {
    finish(p, 127, false);
  }
}

void FakeAgent::finish(const ProcPtr& p, uint32_t status, bool oom) {
  std::lock_guard lock(mutex_);
  if (p->exited) return;
  // Output first, then the exit (the agent's "exit after EOF" rule).
  for (auto* fd : {&p->out, &p->err}) {
    if (*fd) ::shutdown(fd->get(), SHUT_RDWR);
    fd->reset();
  }
  p->exited = true;
  p->exit_status = status;
  p->oom = oom;
  v1::WaitEventResponse event;
  event.set_sequence(next_sequence_++);
  auto* exit = event.mutable_exit();
  exit->set_container_id(p->container_id);
  exit->set_exec_id(p->exec_id);
  exit->set_exit_status(status);
  exit->set_oom_killed(oom);
  events_.push_back(event);
  changed_.notify_all();
}

v1::SignalProcessResponse FakeAgent::SignalProcess(Ctx&, const v1::SignalProcessRequest& req) {
  gate();
  std::vector<ProcPtr> targets;
  {
    std::lock_guard lock(mutex_);
    auto p = find(req.container_id(), req.exec_id());
    if (p->exited) throw StatusError(Code::kNotFound, "process already finished");
    targets.push_back(p);
    if (req.all()) {
      for (auto& [key, q] : procs_) {
        if (key.first == req.container_id() && q != p && !q->exited) targets.push_back(q);
      }
    }
  }
  for (auto& p : targets) {
    std::unique_lock lock(mutex_);
    if (!p->started) {
      lock.unlock();
      finish(p, 128 + req.signal(), false);
      continue;
    }
    p->signal = static_cast<int>(req.signal());
    changed_.notify_all();
  }
  return {};
}

v1::WaitProcessResponse FakeAgent::WaitProcess(Ctx& ctx, const v1::WaitProcessRequest& req) {
  ctx.on_cancel([this] {
    std::lock_guard lock(mutex_);
    changed_.notify_all();
  });
  std::unique_lock lock(mutex_);
  auto p = find(req.container_id(), req.exec_id());
  changed_.wait(lock, [&] { return p->exited || ctx.cancelled() || stopping_.load(); });
  if (!p->exited) throw StatusError(Code::kUnavailable, "agent going away");
  v1::WaitProcessResponse reply;
  reply.set_exit_status(p->exit_status);
  reply.set_oom_killed(p->oom);
  return reply;
}

v1::DeleteProcessResponse FakeAgent::DeleteProcess(Ctx&, const v1::DeleteProcessRequest& req) {
  gate();
  std::vector<std::thread> runners;
  v1::DeleteProcessResponse reply;
  {
    std::lock_guard lock(mutex_);
    auto p = find(req.container_id(), req.exec_id());
    if (p->started && !p->exited) throw StatusError(Code::kFailedPrecondition, "process is running");
    reply.set_pid(p->pid);
    reply.set_exit_status(p->exit_status);
    for (auto it = procs_.begin(); it != procs_.end();) {
      bool match = it->first.first == req.container_id() && (req.exec_id().empty() || it->first.second == req.exec_id());
      if (!match) {
        ++it;
        continue;
      }
      it->second->signal = SIGKILL;
      if (it->second->runner.joinable()) runners.push_back(std::move(it->second->runner));
      it = procs_.erase(it);
    }
    if (req.exec_id().empty()) std::erase(containers_, req.container_id());
    changed_.notify_all();
  }
  for (auto& t : runners) t.join();
  return reply;
}

v1::ResizePtyResponse FakeAgent::ResizePty(Ctx&, const v1::ResizePtyRequest& req) {
  gate();
  std::lock_guard lock(mutex_);
  find(req.container_id(), req.exec_id());
  last_resize_ = {req.width(), req.height()};
  return {};
}

v1::UpdateContainerResponse FakeAgent::UpdateContainer(Ctx&, const v1::UpdateContainerRequest& req) {
  gate();
  std::lock_guard lock(mutex_);
  find(req.container_id(), "");
  last_update_ = req.resources_json();
  return {};
}

v1::ContainerStatsResponse FakeAgent::ContainerStats(Ctx&, const v1::ContainerStatsRequest& req) {
  gate();
  std::lock_guard lock(mutex_);
  find(req.container_id(), "");
  uint64_t running = 0, started = 0;
  for (auto& [key, p] : procs_) {
    if (key.first != req.container_id()) continue;
    if (p->started) ++started;
    if (p->started && !p->exited) ++running;
  }
  v1::ContainerStatsResponse reply;
  reply.set_cgroup_version(2);
  reply.mutable_cpu()->set_usage_usec(1000 * started);
  reply.mutable_memory()->set_usage((1 << 20) * running);
  reply.mutable_memory()->set_inactive_file(4096);
  reply.mutable_pids()->set_current(running);
  return reply;
}

v1::ListProcessesResponse FakeAgent::ListProcesses(Ctx&, const v1::ListProcessesRequest& req) {
  gate();
  std::lock_guard lock(mutex_);
  v1::ListProcessesResponse reply;
  for (auto& [key, p] : procs_) {
    if (key.first != req.container_id() || !p->started || p->exited) continue;
    auto* info = reply.add_processes();
    info->set_pid(p->pid);
    info->set_exec_id(key.second);
  }
  return reply;
}

v1::WaitEventResponse FakeAgent::WaitEvent(Ctx& ctx, const v1::WaitEventRequest& req) {
  ctx.on_cancel([this] {
    std::lock_guard lock(mutex_);
    changed_.notify_all();
  });
  std::unique_lock lock(mutex_);
  auto ready = [&] {
    for (auto& e : events_)
      if (e.sequence() > req.after_sequence()) return true;
    return stopping_.load() || ctx.cancelled();
  };
  if (req.timeout_ms() == 0) {
    changed_.wait(lock, ready);
  } else {
    changed_.wait_for(lock, std::chrono::milliseconds(req.timeout_ms()), ready);
  }
  for (auto& e : events_) {
    if (e.sequence() > req.after_sequence()) return e;
  }
  if (stopping_.load()) throw StatusError(Code::kUnavailable, "agent going away");
  return {};
}

v1::PingResponse FakeAgent::Ping(Ctx&, const v1::PingRequest&) {
  v1::PingResponse reply;
  reply.set_agent_version("fake");
  return reply;
}

v1::BlockDeviceChangedResponse FakeAgent::BlockDeviceChanged(Ctx&, const v1::BlockDeviceChangedRequest& req) {
  gate();
  auto serials = drive_serials_();
  if (std::find(serials.begin(), serials.end(), req.serial()) == serials.end()) {
    throw StatusError(Code::kDeadlineExceeded, "no block device with serial " + req.serial());
  }
  std::lock_guard lock(mutex_);
  ++block_changes_;
  v1::BlockDeviceChangedResponse reply;
  reply.set_size_bytes(req.expected_size_bytes());
  return reply;
}

// ---------------------------------------------------------------------------

FakeHypervisor::~FakeHypervisor() { stop(); }

void FakeHypervisor::start(const VmSpec& spec) {
  {
    std::lock_guard lock(mutex_);
    spec_ = spec;
    for (const auto& d : spec.drives) drives_[d.id] = d.path;
    uds_ = spec.vm_dir + "/vsock.sock";
  }
  agent_ = std::make_unique<FakeAgent>(uds_, [this] {
    std::vector<std::string> serials;
    for (const auto& path : drive_paths()) serials.push_back(block_serial(path));
    return serials;
  });
  agent_->start();
}

std::vector<std::string> FakeHypervisor::drive_paths() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> out;
  for (const auto& [id, path] : drives_) out.push_back(path);
  return out;
}

VmSpec FakeHypervisor::spec() const {
  std::lock_guard lock(mutex_);
  return spec_;
}

void FakeHypervisor::pause() { paused_.store(true); }
void FakeHypervisor::resume() { paused_.store(false); }

void FakeHypervisor::update_drive(const std::string& drive_id, const std::string& path) {
  std::lock_guard lock(mutex_);
  auto it = drives_.find(drive_id);
  if (it == drives_.end()) throw common::Error("update drive " + drive_id + ": no such drive");
  if (::access(path.c_str(), R_OK) != 0) throw common::Error("update drive " + drive_id + ": cannot open " + path);
  it->second = path;
}

void FakeHypervisor::end(int code, const std::string& reason) {
  if (ended_.exchange(true)) return;
  if (agent_) agent_->stop();
  if (on_exit_) on_exit_(VmExitInfo{code, reason});
}

void FakeHypervisor::stop() { end(0, "stopped"); }

void FakeHypervisor::crash() { end(1, "fake VMM killed"); }

}  // namespace ember::shim::testing
