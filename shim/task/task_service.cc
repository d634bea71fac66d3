#include "shim/task/task_service.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "containerd/events/task.pb.h"
#include "containerd/runc/v1/process_details.pb.h"
#include "containerd/runtimeoptions/v1/api.pb.h"
#include "proto/ttrpc/status.h"
#include "shim/bootstrap/shim_address.h"
#include "shim/hypervisor/factory.h"
#include "shim/hypervisor/kvm_check.h"
#include "shim/task/metrics.h"
#include "shim/task/state_file.h"
#include "vmm/common/error.h"

namespace ember::shim {

namespace task = containerd::task::v2;
namespace types = containerd::v1::types;
namespace events = containerd::events;
namespace v1 = ember::agent::v1;
using ttrpc::Code;
using ttrpc::StatusError;

namespace {

using Clock = std::chrono::steady_clock;

int64_t ms_since(Clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
}

void set_timestamp(google::protobuf::Timestamp* ts, std::chrono::system_clock::time_point t) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  ts->set_seconds(ns / 1000000000);
  ts->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

ttrpc::CallOptions with_timeout(std::chrono::milliseconds t) {
  ttrpc::CallOptions o;
  o.timeout = t;
  return o;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw StatusError(Code::kInvalidArgument, "read " + path + ": " + common::errno_text(errno));
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

std::string process_name(const std::string& id, const std::string& exec_id) {
  return exec_id.empty() ? "container " + id : "exec " + exec_id + " of container " + id;
}

// Agent errors keep their code (NOT_FOUND, FAILED_PRECONDITION, ...) and get
// context; anything else becomes UNKNOWN with its message.
[[noreturn]] void rethrow_agent_error(const std::string& what) {
  try {
    throw;
  } catch (const StatusError& e) {
    throw StatusError(e.code(), what + ": " + e.status().message);
  } catch (const std::exception& e) {
    throw StatusError(Code::kUnknown, what + ": " + e.what());
  }
}

}  // namespace

TaskService::TaskService(TaskServiceOptions options, EventSink& events, ShimLog& log)
    : options_(std::move(options)), events_(events), log_(log) {
  if (!options_.make_hypervisor) options_.make_hypervisor = make_hypervisor;
  if (!options_.kvm_runs_linux) {
    options_.kvm_runs_linux = [this](const RuntimeConfig& config) { return kvm_runs_linux_guests(config, log_); };
  }
}

TaskService::~TaskService() { shutdown(); }

size_t TaskService::container_count() const {
  std::lock_guard lock(mutex_);
  return containers_.size();
}

size_t TaskService::busy_count() const {
  std::lock_guard lock(mutex_);
  return containers_.size() + creating_.size();
}

std::shared_ptr<TaskService::Container> TaskService::find_container(const std::string& id) {
  std::lock_guard lock(mutex_);
  auto it = containers_.find(id);
  if (it == containers_.end()) throw StatusError(Code::kNotFound, "container " + id + " not found");
  return it->second;
}

std::shared_ptr<TaskService::Process> TaskService::find_process(const std::string& id, const std::string& exec_id,
                                                                std::shared_ptr<Container>* container) {
  std::lock_guard lock(mutex_);
  auto it = containers_.find(id);
  if (it == containers_.end()) throw StatusError(Code::kNotFound, "container " + id + " not found");
  if (container) *container = it->second;
  if (exec_id.empty()) return it->second->init;
  auto e = it->second->execs.find(exec_id);
  if (e == it->second->execs.end()) {
    throw StatusError(Code::kNotFound, "exec " + exec_id + " of container " + id + " not found");
  }
  return e->second;
}

std::shared_ptr<Sandbox> TaskService::sandbox() {
  std::lock_guard lock(mutex_);
  return sandbox_;
}

std::shared_ptr<Sandbox> TaskService::live_sandbox() {
  auto sb = sandbox();
  if (!sb || !sb->alive()) throw StatusError(Code::kFailedPrecondition, "the pod's VM is not running");
  return sb;
}

// ---------------------------------------------------------------------------
// Create

RuntimeConfig TaskService::load_config(const task::CreateTaskRequest& request) {
  std::string config_path;
  if (request.has_options() && !request.options().value().empty()) {
    runtimeoptions::v1::Options options;
    if (request.options().type_url().find("runtimeoptions.v1.Options") != std::string::npos &&
        options.ParseFromString(request.options().value())) {
      config_path = options.config_path();
    } else {
      log_.warn("ignoring runtime options", {{"type_url", request.options().type_url()}});
    }
  }
  try {
    RuntimeConfig config = load_runtime_config(resolve_config_path(config_path, options_.system_config_path));
    check_vm_files(config);
    return config;
  } catch (const ConfigError& e) {
    throw StatusError(Code::kInvalidArgument, e.what());
  }
}

void TaskService::resolve_backend(const RuntimeConfig& config, BackendKind& backend, std::string& accel) {
  bool need_check = config.backend == BackendKind::kAuto ||
                    (config.accel == AccelKind::kAuto && config.backend != BackendKind::kEmber);
  bool kvm_ok = need_check ? options_.kvm_runs_linux(config) : false;
  backend = config.backend;
  if (backend == BackendKind::kAuto) backend = kvm_ok ? BackendKind::kEmber : BackendKind::kQemu;
  if (config.accel == AccelKind::kKvm) accel = "kvm";
  else if (config.accel == AccelKind::kTcg) accel = "tcg";
  else accel = kvm_ok ? "kvm" : "tcg";
}

std::string TaskService::vm_dir_for(const RuntimeConfig& config, const std::string& group) const {
  // Short and unique per containerd instance, namespace and pod; the hybrid
  // vsock socket inside must fit sun_path with its "_<port>" suffix.
  return config.state_dir + "/" + sha256_hex(options_.containerd_address + "/" + options_.ns + "/" + group).substr(0, 24);
}

std::shared_ptr<Sandbox> TaskService::boot_or_attach(const RuntimeConfig& config, Container& c, bool& booted) {
  std::lock_guard boot_lock(sandbox_mutex_);
  booted = false;
  std::shared_ptr<Sandbox> sb = sandbox();
  if (sb && !sb->alive()) {
    if (container_count() > 0) {
      throw StatusError(Code::kFailedPrecondition, "the pod's VM has exited; create a new pod");
    }
    sb->stop();
    std::lock_guard lock(mutex_);
    sandbox_.reset();
    sb.reset();
  }
  if (sb) {
    auto t0 = Clock::now();
    try {
      c.slot = sb->attach(c.disk);
    } catch (...) {
      rethrow_agent_error("attach the root disk of " + c.id);
    }
    log_.info("phase", {{"id", c.id}, {"phase", "attach_rootfs"}, {"duration_ms", ms_since(t0)}});
    return sb;
  }

  BackendKind backend;
  SandboxOptions so;
  so.name = group_;
  resolve_backend(config, backend, so.vm.accel);
  so.vm.kernel = config.kernel;
  so.vm.initrd = config.initrd;
  so.vm.kernel_args = config.kernel_args;
  so.vm.vcpus = config.vcpus;
  so.vm.memory_mib = config.memory_mib;
  so.vm.qemu_binary = config.qemu_binary;
  so.vm.console_log = config.console_log;
  so.vm.vm_dir = vm_dir_for(config, group_);
  so.spare_slots = config.spare_drive_slots;
  so.boot_timeout = std::chrono::milliseconds(config.boot_timeout_ms);
  std::error_code ec;
  std::filesystem::create_directories(so.vm.vm_dir, ec);
  if (ec) throw StatusError(Code::kUnknown, "create VM directory " + so.vm.vm_dir + ": " + ec.message());
  ::chmod(so.vm.vm_dir.c_str(), 0700);

  auto t0 = Clock::now();
  auto hypervisor = options_.make_hypervisor(backend, log_);
  sb = std::make_shared<Sandbox>(so, std::move(hypervisor), log_);
  {
    std::lock_guard lock(mutex_);
    sandbox_ = sb;
  }
  try {
    c.slot = sb->boot(c.disk, [this](const VmExitInfo& info) { on_vm_exit(info); },
                      [this](const std::string& id) { on_oom(id); });
  } catch (...) {
    sb->stop();
    {
      std::lock_guard lock(mutex_);
      sandbox_.reset();
    }
    std::filesystem::remove_all(so.vm.vm_dir, ec);
    rethrow_agent_error("start the pod's VM (" + config.describe() + ", backend " +
                        std::string(backend_name(backend)) + ")");
  }
  booted = true;
  log_.info("phase", {{"id", c.id}, {"phase", "vm_boot"}, {"duration_ms", ms_since(t0)},
                      {"backend", sb->backend_name()}, {"accel", so.vm.accel}});
  return sb;
}

void TaskService::write_state_file(const Container& c, const Sandbox& sb) {
  ContainerState s;
  s.id = c.id;
  s.bundle = c.bundle;
  s.image = c.disk.owned ? c.disk.path : "";
  s.image_owned = c.disk.owned;
  s.vm_dir = sb.vm_dir();
  s.vmm_pid = sb.external_pid();
  s.vmm_start_time = process_start_time(s.vmm_pid);
  s.backend = sb.backend_name();
  write_container_state(c.bundle, s);
}

task::CreateTaskResponse TaskService::Create(Ctx&, const task::CreateTaskRequest& req) {
  const std::string& id = req.id();
  if (id.empty()) throw StatusError(Code::kInvalidArgument, "create: empty container id");
  if (req.bundle().empty()) throw StatusError(Code::kInvalidArgument, "create " + id + ": empty bundle path");
  if (!req.checkpoint().empty()) {
    throw StatusError(Code::kUnimplemented, "create " + id + ": restoring from a checkpoint is not supported");
  }
  {
    std::lock_guard lock(mutex_);
    if (shutting_down_) throw StatusError(Code::kUnavailable, "shim is shutting down");
    if (containers_.count(id) || creating_.count(id)) {
      throw StatusError(Code::kAlreadyExists, "container " + id + " already exists");
    }
    creating_.insert(id);
  }
  struct Unreserve {
    TaskService* self;
    std::string id;
    ~Unreserve() {
      std::lock_guard lock(self->mutex_);
      self->creating_.erase(id);
    }
  } unreserve{this, id};

  auto t_create = Clock::now();
  log_.info("create", {{"id", id}, {"bundle", req.bundle()}});
  std::string spec_text = read_file(req.bundle() + "/config.json");
  nlohmann::json spec;
  try {
    spec = nlohmann::json::parse(spec_text);
  } catch (const std::exception& e) {
    throw StatusError(Code::kInvalidArgument, "parse " + req.bundle() + "/config.json: " + e.what());
  }
  std::string group = group_id(spec, id);
  {
    std::lock_guard lock(mutex_);
    if (group_.empty()) group_ = group;
    if (group != group_) {
      // Different group, same socket: only possible with a hash collision or a
      // hand-made start; refuse rather than mix pods in one VM.
      throw StatusError(Code::kFailedPrecondition,
                        "container " + id + " belongs to group " + group + ", this shim serves " + group_);
    }
  }
  RuntimeConfig config = load_config(req);

  auto c = std::make_shared<Container>();
  c->id = id;
  c->bundle = req.bundle();
  c->work_dir = work_dir_of(c->bundle);
  for (const auto& m : req.rootfs()) {
    c->mounts.push_back({m.type(), m.source(), m.target(), {m.options().begin(), m.options().end()}});
  }
  auto p = std::make_shared<Process>();
  p->container_id = id;
  p->stdio = {req.stdin(), req.stdout(), req.stderr(), req.terminal()};
  c->init = p;

  // Rootfs.
  auto t0 = Clock::now();
  RootfsRequest rootfs;
  rootfs.mounts = c->mounts;
  rootfs.bundle = c->bundle;
  if (spec.contains("root") && spec["root"].is_object()) rootfs.spec_root_path = spec["root"].value("path", "");
  rootfs.image_path = c->work_dir + "/ember-rootfs.ext4";
  rootfs.slack_bytes = config.rootfs_slack_mib << 20;
  try {
    c->disk = prepare_rootfs(rootfs, log_);
  } catch (const std::exception& e) {
    throw StatusError(Code::kUnknown, "prepare rootfs of " + id + ": " + e.what());
  }
  log_.info("phase", {{"id", id}, {"phase", "rootfs"}, {"duration_ms", ms_since(t0)}});

  std::shared_ptr<Sandbox> sb;
  bool booted = false;
  bool agent_created = false;
  try {
    // Host side of stdio first: a bad FIFO fails before any VM work.
    auto io = std::make_unique<ProcessIo>(p->stdio, IoContext{id, options_.ns}, log_);

    sb = boot_or_attach(config, *c, booted);

    t0 = Clock::now();
    v1::CreateContainerRequest create;
    create.set_container_id(id);
    create.set_spec_json(spec_text);
    auto* upper = create.mutable_rootfs()->mutable_upper();
    upper->set_serial(block_serial(c->disk.path));
    upper->set_fstype(c->disk.fstype);
    for (const auto& o : c->disk.mount_options) upper->add_options(o);
    create.mutable_rootfs()->set_readonly(c->disk.read_only);
    auto* stdio = create.mutable_stdio();
    stdio->set_terminal(io->terminal());
    stdio->set_stdin(io->has_stdin());
    stdio->set_stdout(io->has_stdout());
    stdio->set_stderr(io->has_stderr());
    v1::CreateContainerResponse created;
    try {
      created = sb->agent()->api().CreateContainer(create, with_timeout(std::chrono::seconds(120)));
    } catch (...) {
      rethrow_agent_error("create container " + id + " in the VM");
    }
    agent_created = true;
    io->attach([&](agent::StreamKind kind) { return sb->open_stream(id, "", kind); });
    p->io = std::move(io);
    p->pid = static_cast<uint32_t>(sb->vmm_pid());
    log_.info("phase", {{"id", id}, {"phase", "agent_create"}, {"duration_ms", ms_since(t0)},
                        {"guest_pid", created.pid()}});
    write_state_file(*c, *sb);
  } catch (...) {
    log_.error("create failed", {{"id", id}});
    if (agent_created && sb) {
      try {
        v1::SignalProcessRequest kill;
        kill.set_container_id(id);
        kill.set_signal(SIGKILL);
        kill.set_all(true);
        sb->agent()->api().SignalProcess(kill, with_timeout(std::chrono::seconds(5)));
      } catch (...) {
      }
      try {
        v1::DeleteProcessRequest del;
        del.set_container_id(id);
        sb->agent()->api().DeleteProcess(del, with_timeout(std::chrono::seconds(10)));
      } catch (...) {
      }
    }
    if (p->io) p->io->abort();
    if (sb && c->slot && !booted) sb->release(*c->slot);
    if (booted) {
      std::lock_guard boot_lock(sandbox_mutex_);
      sb->stop();
      std::lock_guard lock(mutex_);
      if (sandbox_ == sb) sandbox_.reset();
      std::error_code ec;
      std::filesystem::remove_all(sb->vm_dir(), ec);
    }
    cleanup_rootfs(c->bundle, c->disk.owned ? c->disk.path : "", log_);
    remove_container_state(c->bundle);
    throw;
  }

  {
    std::lock_guard lock(mutex_);
    containers_[id] = c;
  }
  start_waiter(c, p, sb);

  events::TaskCreate event;
  event.set_container_id(id);
  event.set_bundle(c->bundle);
  for (const auto& m : req.rootfs()) *event.add_rootfs() = m;
  event.mutable_io()->set_stdin(req.stdin());
  event.mutable_io()->set_stdout(req.stdout());
  event.mutable_io()->set_stderr(req.stderr());
  event.mutable_io()->set_terminal(req.terminal());
  event.set_pid(p->pid);
  events_.publish(event);
  log_.info("phase", {{"id", id}, {"phase", "create_total"}, {"duration_ms", ms_since(t_create)}});

  task::CreateTaskResponse reply;
  reply.set_pid(p->pid);
  return reply;
}

// ---------------------------------------------------------------------------
// Process exits

void TaskService::start_waiter(const std::shared_ptr<Container>& c, const std::shared_ptr<Process>& p,
                               const std::shared_ptr<Sandbox>& sb) {
  std::lock_guard lock(mutex_);
  p->waiter = std::thread([this, c, p, sb] { wait_for_exit(c, p, sb); });
}

void TaskService::wait_for_exit(std::shared_ptr<Container> c, std::shared_ptr<Process> p,
                                std::shared_ptr<Sandbox> sb) {
  ::pthread_setname_np(::pthread_self(), "ember-wait");
  uint32_t status = kVmLostExitStatus;
  bool oom = false;
  bool vm_gone = false;
  while (true) {
    {
      std::lock_guard lock(mutex_);
      if (p->exit_claimed || shutting_down_) return;
    }
    try {
      v1::WaitProcessRequest request;
      request.set_container_id(c->id);
      request.set_exec_id(p->exec_id);
      v1::WaitProcessResponse reply = sb->agent()->api().WaitProcess(request);
      status = reply.exit_status();
      oom = reply.oom_killed();
      break;
    } catch (const StatusError& e) {
      if (!sb->alive()) {
        vm_gone = true;
        break;
      }
      if (e.code() == Code::kNotFound) {
        log_.warn("agent lost the process", {{"id", c->id}, {"exec_id", p->exec_id}, {"error", e.what()}});
        break;
      }
      log_.warn("wait for process", {{"id", c->id}, {"exec_id", p->exec_id}, {"error", e.what()}});
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    } catch (const std::exception& e) {
      if (!sb->alive()) {
        vm_gone = true;
        break;
      }
      log_.warn("wait for process", {{"id", c->id}, {"exec_id", p->exec_id}, {"error", e.what()}});
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  }
  complete_exit(c, p, status, oom, vm_gone);
}

void TaskService::complete_exit(const std::shared_ptr<Container>& c, const std::shared_ptr<Process>& p,
                                uint32_t status, bool oom_killed, bool vm_gone) {
  {
    std::unique_lock lock(mutex_);
    if (p->exit_claimed) return;
    p->exit_claimed = true;
    // containerd wants TaskStart/TaskExecStarted before the TaskExit.
    changed_.wait(lock, [&] { return p->start_phase != StartPhase::kStarting; });
  }
  auto exited_at = std::chrono::system_clock::now();
  if (p->io) {
    if (vm_gone) p->io->abort();
    p->io->finish_output(vm_gone ? std::chrono::milliseconds(0) : options_.output_drain_timeout);
  }
  uint32_t pid;
  {
    std::lock_guard lock(mutex_);
    p->exit = ExitRecord{status, exited_at};
    p->status = types::STOPPED;
    pid = p->pid;
    changed_.notify_all();
  }
  {
    std::lock_guard order(c->events_mutex);
    if (oom_killed && !c->oom_published) {
      c->oom_published = true;
      events::TaskOOM oom;
      oom.set_container_id(c->id);
      events_.publish(oom);
    }
    events::TaskExit exit;
    exit.set_container_id(c->id);
    exit.set_id(p->exec_id.empty() ? c->id : p->exec_id);
    exit.set_pid(pid);
    exit.set_exit_status(status);
    set_timestamp(exit.mutable_exited_at(), exited_at);
    events_.publish(exit);
    if (p == c->init) c->init_exit_published = true;
  }
  log_.info("process exited", {{"id", c->id}, {"exec_id", p->exec_id}, {"exit_status", status},
                               {"oom_killed", oom_killed ? "true" : "false"}});
}

void TaskService::on_vm_exit(const VmExitInfo& info) {
  std::vector<std::pair<std::shared_ptr<Container>, std::shared_ptr<Process>>> alive;
  {
    std::lock_guard lock(mutex_);
    for (auto& [id, c] : containers_) {
      if (!c->init->exit_claimed) alive.emplace_back(c, c->init);
      for (auto& [eid, e] : c->execs) {
        if (!e->exit_claimed) alive.emplace_back(c, e);
      }
    }
  }
  if (!alive.empty()) {
    log_.error("vm gone, processes exit", {{"reason", info.reason}, {"processes", alive.size()}});
  }
  for (auto& [c, p] : alive) complete_exit(c, p, kVmLostExitStatus, false, true);
}

void TaskService::on_oom(const std::string& container_id) {
  std::shared_ptr<Container> c;
  {
    std::lock_guard lock(mutex_);
    auto it = containers_.find(container_id);
    if (it == containers_.end()) return;
    c = it->second;
  }
  std::lock_guard order(c->events_mutex);
  // After the init's TaskExit an OOM notice would arrive out of order; the
  // exit already carried it (oom_killed in the agent's Wait reply).
  if (c->init_exit_published) return;
  c->oom_published = true;
  events::TaskOOM oom;
  oom.set_container_id(container_id);
  events_.publish(oom);
  log_.warn("oom", {{"id", container_id}});
}

// ---------------------------------------------------------------------------
// Start, State, Wait, Kill

task::StartResponse TaskService::Start(Ctx&, const task::StartRequest& req) {
  std::shared_ptr<Container> c;
  auto p = find_process(req.id(), req.exec_id(), &c);
  auto t0 = Clock::now();
  {
    std::lock_guard lock(mutex_);
    if (p->exit_claimed) {
      throw StatusError(Code::kFailedPrecondition, process_name(req.id(), req.exec_id()) + " has exited");
    }
    if (p->start_phase != StartPhase::kNotStarted) {
      throw StatusError(Code::kFailedPrecondition, process_name(req.id(), req.exec_id()) + " was already started");
    }
    p->start_phase = StartPhase::kStarting;
  }
  std::shared_ptr<Sandbox> sb;
  v1::StartProcessResponse started;
  try {
    sb = live_sandbox();
    v1::StartProcessRequest request;
    request.set_container_id(req.id());
    request.set_exec_id(req.exec_id());
    started = sb->agent()->api().StartProcess(request, with_timeout(std::chrono::seconds(60)));
  } catch (...) {
    std::lock_guard lock(mutex_);
    p->start_phase = StartPhase::kNotStarted;
    changed_.notify_all();
    rethrow_agent_error("start " + process_name(req.id(), req.exec_id()));
  }
  uint32_t pid;
  {
    std::lock_guard lock(mutex_);
    if (!req.exec_id().empty()) p->pid = started.pid();
    p->status = types::RUNNING;
    pid = p->pid;
  }
  if (req.exec_id().empty()) {
    events::TaskStart event;
    event.set_container_id(req.id());
    event.set_pid(pid);
    events_.publish(event);
  } else {
    events::TaskExecStarted event;
    event.set_container_id(req.id());
    event.set_exec_id(req.exec_id());
    event.set_pid(pid);
    events_.publish(event);
  }
  {
    std::lock_guard lock(mutex_);
    p->start_phase = StartPhase::kStarted;
    changed_.notify_all();
  }
  if (!req.exec_id().empty()) start_waiter(c, p, sb);
  log_.info("phase", {{"id", req.id()}, {"exec_id", req.exec_id()}, {"phase", "start"},
                      {"duration_ms", ms_since(t0)}, {"guest_pid", started.pid()}});
  task::StartResponse reply;
  reply.set_pid(pid);
  return reply;
}

task::StateResponse TaskService::State(Ctx&, const task::StateRequest& req) {
  std::shared_ptr<Container> c;
  auto p = find_process(req.id(), req.exec_id(), &c);
  std::lock_guard lock(mutex_);
  task::StateResponse reply;
  reply.set_id(req.exec_id().empty() ? req.id() : req.exec_id());
  reply.set_exec_id(req.exec_id());
  reply.set_bundle(c->bundle);
  reply.set_pid(p->pid);
  reply.set_status(p->status);
  reply.set_stdin(p->stdio.stdin_path);
  reply.set_stdout(p->stdio.stdout_path);
  reply.set_stderr(p->stdio.stderr_path);
  reply.set_terminal(p->stdio.terminal);
  if (p->exit) {
    reply.set_exit_status(p->exit->status);
    set_timestamp(reply.mutable_exited_at(), p->exit->at);
  }
  return reply;
}

task::WaitResponse TaskService::Wait(Ctx& ctx, const task::WaitRequest& req) {
  auto p = find_process(req.id(), req.exec_id());
  ctx.on_cancel([this] {
    std::lock_guard lock(mutex_);
    changed_.notify_all();
  });
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return p->exit.has_value() || ctx.cancelled() || shutting_down_; });
  if (!p->exit) throw StatusError(Code::kCancelled, "wait for " + process_name(req.id(), req.exec_id()) + " cancelled");
  task::WaitResponse reply;
  reply.set_exit_status(p->exit->status);
  set_timestamp(reply.mutable_exited_at(), p->exit->at);
  return reply;
}

TaskService::Empty TaskService::Kill(Ctx&, const task::KillRequest& req) {
  auto p = find_process(req.id(), req.exec_id());
  {
    std::lock_guard lock(mutex_);
    if (p->exit_claimed) throw StatusError(Code::kNotFound, process_name(req.id(), req.exec_id()) + ": process already finished");
    if (!req.exec_id().empty() && p->start_phase == StartPhase::kNotStarted) {
      throw StatusError(Code::kFailedPrecondition, process_name(req.id(), req.exec_id()) + " was not started");
    }
  }
  auto sb = sandbox();
  if (!sb || !sb->alive()) throw StatusError(Code::kNotFound, process_name(req.id(), req.exec_id()) + ": process already finished (VM gone)");
  v1::SignalProcessRequest request;
  request.set_container_id(req.id());
  request.set_exec_id(req.exec_id());
  request.set_signal(req.signal());
  request.set_all(req.all());
  try {
    sb->agent()->api().SignalProcess(request, with_timeout(std::chrono::seconds(10)));
  } catch (...) {
    rethrow_agent_error("signal " + std::to_string(req.signal()) + " to " + process_name(req.id(), req.exec_id()));
  }
  log_.info("kill", {{"id", req.id()}, {"exec_id", req.exec_id()}, {"signal", req.signal()},
                     {"all", req.all() ? "true" : "false"}});
  return {};
}

// ---------------------------------------------------------------------------
// Delete

void TaskService::reap_thread(std::thread thread) {
  if (!thread.joinable()) return;
  if (thread.get_id() == std::this_thread::get_id()) {
    thread.detach();
    return;
  }
  std::lock_guard lock(mutex_);
  finished_threads_.push_back(std::move(thread));
}

task::DeleteResponse TaskService::Delete(Ctx&, const task::DeleteRequest& req) {
  std::shared_ptr<Container> c;
  auto p = find_process(req.id(), req.exec_id(), &c);
  auto t0 = Clock::now();
  auto sb = sandbox();
  auto delete_in_agent = [&](const std::string& exec_id) {
    if (!sb || !sb->alive()) return;
    try {
      v1::DeleteProcessRequest del;
      del.set_container_id(req.id());
      del.set_exec_id(exec_id);
      sb->agent()->api().DeleteProcess(del, with_timeout(std::chrono::seconds(30)));
    } catch (const StatusError& e) {
      if (e.code() != Code::kNotFound) {
        log_.warn("delete in the VM", {{"id", req.id()}, {"exec_id", exec_id}, {"error", e.what()}});
      }
    } catch (const std::exception& e) {
      log_.warn("delete in the VM", {{"id", req.id()}, {"exec_id", exec_id}, {"error", e.what()}});
    }
  };

  {
    std::lock_guard lock(mutex_);
    if (!p->exit_claimed && p->status != types::CREATED) {
      throw StatusError(Code::kFailedPrecondition,
                        "cannot delete " + process_name(req.id(), req.exec_id()) + ": it is running");
    }
  }

  if (!req.exec_id().empty()) {
    bool started;
    {
      std::lock_guard lock(mutex_);
      started = p->start_phase != StartPhase::kNotStarted;
      if (!started && !p->exit_claimed) {
        // Never started: it never ran, so there is no exit to wait for.
        p->exit_claimed = true;
        p->exit = ExitRecord{0, std::chrono::system_clock::now()};
        p->status = types::STOPPED;
      }
    }
    delete_in_agent(req.exec_id());
    if (p->io) p->io->abort();
    std::thread waiter;
    ExitRecord exit;
    {
      std::unique_lock lock(mutex_);
      // A started exec that is not running any more has its exit being
      // recorded by its waiter; wait for that record.
      changed_.wait_for(lock, std::chrono::seconds(5), [&] { return p->exit.has_value(); });
      exit = p->exit.value_or(ExitRecord{});
      c->execs.erase(req.exec_id());
      waiter = std::move(p->waiter);
    }
    reap_thread(std::move(waiter));
    task::DeleteResponse reply;
    reply.set_pid(p->pid);
    reply.set_exit_status(exit.status);
    set_timestamp(reply.mutable_exited_at(), exit.at);
    return reply;
  }

  // Init: a created-but-never-started container is killed first (runc does the same).
  bool created_only;
  {
    std::lock_guard lock(mutex_);
    created_only = !p->exit_claimed;
  }
  if (created_only) {
    if (sb && sb->alive()) {
      try {
        v1::SignalProcessRequest kill;
        kill.set_container_id(req.id());
        kill.set_signal(SIGKILL);
        kill.set_all(true);
        sb->agent()->api().SignalProcess(kill, with_timeout(std::chrono::seconds(10)));
      } catch (const std::exception& e) {
        log_.warn("kill created container", {{"id", req.id()}, {"error", e.what()}});
      }
    }
    std::unique_lock lock(mutex_);
    if (!changed_.wait_for(lock, std::chrono::seconds(10), [&] { return p->exit.has_value(); })) {
      lock.unlock();
      complete_exit(c, p, 128 + SIGKILL, false, true);
    }
  }
  {
    // The exit may be being recorded right now (output draining).
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, options_.output_drain_timeout + std::chrono::seconds(1),
                      [&] { return p->exit.has_value(); });
  }
  // Execs end with their container (its PID namespace); record any the agent
  // did not report.
  std::vector<std::shared_ptr<Process>> execs;
  {
    std::lock_guard lock(mutex_);
    for (auto& [eid, e] : c->execs) execs.push_back(e);
  }
  for (auto& e : execs) {
    {
      std::unique_lock lock(mutex_);
      if (changed_.wait_for(lock, std::chrono::seconds(2), [&] { return e->exit.has_value(); })) continue;
    }
    complete_exit(c, e, 128 + SIGKILL, false, true);
  }
  std::vector<std::thread> threads;
  ExitRecord exit;
  size_t remaining;
  {
    std::lock_guard lock(mutex_);
    exit = p->exit.value_or(ExitRecord{});
    threads.push_back(std::move(p->waiter));
    for (auto& e : execs) threads.push_back(std::move(e->waiter));
    c->execs.clear();
    containers_.erase(req.id());
    remaining = containers_.size();
  }
  // The last container takes the VM with it: tearing the container down
  // inside the guest first would only cost time. If the VM stays (another
  // container of the pod, or one being created right now), the guest must
  // let go of the disk before its slot is reused.
  bool vm_stopped = remaining == 0 && stop_sandbox_if_unused();
  if (!vm_stopped) delete_in_agent("");
  for (auto& e : execs) e->io.reset();
  p->io.reset();  // closes stdin, stops a logger binary
  if (sb && c->slot && !vm_stopped) sb->release(*c->slot);
  cleanup_rootfs(c->bundle, c->disk.owned ? c->disk.path : "", log_);
  remove_container_state(c->bundle);
  for (auto& t : threads) reap_thread(std::move(t));

  events::TaskDelete event;
  event.set_container_id(req.id());
  event.set_pid(p->pid);
  event.set_exit_status(exit.status);
  set_timestamp(event.mutable_exited_at(), exit.at);
  events_.publish(event);

  log_.info("phase", {{"id", req.id()}, {"phase", "delete"}, {"duration_ms", ms_since(t0)}});

  task::DeleteResponse reply;
  reply.set_pid(p->pid);
  reply.set_exit_status(exit.status);
  set_timestamp(reply.mutable_exited_at(), exit.at);
  return reply;
}

bool TaskService::stop_sandbox_if_unused() {
  std::lock_guard boot_lock(sandbox_mutex_);
  std::shared_ptr<Sandbox> sb;
  {
    std::lock_guard lock(mutex_);
    if (!containers_.empty() || !creating_.empty()) return false;
    if (!sandbox_) return true;
    sb = sandbox_;
    sandbox_.reset();
  }
  auto t0 = Clock::now();
  sb->stop();
  std::error_code ec;
  std::filesystem::remove_all(sb->vm_dir(), ec);
  log_.info("phase", {{"phase", "vm_stop"}, {"duration_ms", ms_since(t0)}});
  return true;
}

// ---------------------------------------------------------------------------
// Exec, IO, resources

TaskService::Empty TaskService::Exec(Ctx&, const task::ExecProcessRequest& req) {
  const std::string& exec_id = req.exec_id();
  if (exec_id.empty()) throw StatusError(Code::kInvalidArgument, "exec into " + req.id() + ": empty exec id");
  auto c = find_container(req.id());
  auto p = std::make_shared<Process>();
  p->container_id = req.id();
  p->exec_id = exec_id;
  p->stdio = {req.stdin(), req.stdout(), req.stderr(), req.terminal()};
  {
    std::lock_guard lock(mutex_);
    if (c->init->exit_claimed) {
      throw StatusError(Code::kFailedPrecondition, "exec into " + req.id() + ": the container is not running");
    }
    if (c->execs.count(exec_id) || c->execs_creating.count(exec_id)) {
      throw StatusError(Code::kAlreadyExists, "exec " + exec_id + " of container " + req.id() + " already exists");
    }
    c->execs_creating.insert(exec_id);
  }
  try {
    try {
      if (!nlohmann::json::accept(req.spec().value())) throw std::runtime_error("invalid JSON");
    } catch (const std::exception& e) {
      throw StatusError(Code::kInvalidArgument, "exec " + exec_id + ": process spec is not JSON: " + e.what());
    }
    auto sb = live_sandbox();
    auto io = std::make_unique<ProcessIo>(p->stdio, IoContext{req.id(), options_.ns}, log_);
    v1::ExecProcessRequest request;
    request.set_container_id(req.id());
    request.set_exec_id(exec_id);
    request.set_process_json(req.spec().value());
    auto* stdio = request.mutable_stdio();
    stdio->set_terminal(io->terminal());
    stdio->set_stdin(io->has_stdin());
    stdio->set_stdout(io->has_stdout());
    stdio->set_stderr(io->has_stderr());
    try {
      sb->agent()->api().ExecProcess(request, with_timeout(std::chrono::seconds(30)));
    } catch (...) {
      rethrow_agent_error("exec " + exec_id + " in container " + req.id());
    }
    try {
      io->attach([&](agent::StreamKind kind) { return sb->open_stream(req.id(), exec_id, kind); });
    } catch (...) {
      v1::DeleteProcessRequest del;
      del.set_container_id(req.id());
      del.set_exec_id(exec_id);
      try {
        sb->agent()->api().DeleteProcess(del, with_timeout(std::chrono::seconds(10)));
      } catch (...) {
      }
      rethrow_agent_error("attach stdio of exec " + exec_id);
    }
    p->io = std::move(io);
    p->pid = 0;
  } catch (...) {
    std::lock_guard lock(mutex_);
    c->execs_creating.erase(exec_id);
    throw;
  }
  {
    std::lock_guard lock(mutex_);
    c->execs_creating.erase(exec_id);
    c->execs[exec_id] = p;
  }
  events::TaskExecAdded event;
  event.set_container_id(req.id());
  event.set_exec_id(exec_id);
  events_.publish(event);
  log_.info("exec added", {{"id", req.id()}, {"exec_id", exec_id}});
  return {};
}

TaskService::Empty TaskService::ResizePty(Ctx&, const task::ResizePtyRequest& req) {
  auto p = find_process(req.id(), req.exec_id());
  // A client without a real terminal (ctr under `script`, pipes) reports 0x0;
  // runc applies it as is, the agent refuses it: nothing to resize either way.
  if (req.width() == 0 && req.height() == 0) return {};
  auto sb = live_sandbox();
  v1::ResizePtyRequest request;
  request.set_container_id(req.id());
  request.set_exec_id(req.exec_id());
  request.set_width(req.width());
  request.set_height(req.height());
  try {
    sb->agent()->api().ResizePty(request, with_timeout(std::chrono::seconds(10)));
  } catch (...) {
    rethrow_agent_error("resize the terminal of " + process_name(req.id(), req.exec_id()));
  }
  return {};
}

TaskService::Empty TaskService::CloseIO(Ctx&, const task::CloseIORequest& req) {
  auto p = find_process(req.id(), req.exec_id());
  if (req.stdin() && p->io) p->io->close_stdin();
  return {};
}

TaskService::Empty TaskService::Update(Ctx&, const task::UpdateTaskRequest& req) {
  find_container(req.id());
  auto sb = live_sandbox();
  v1::UpdateContainerRequest request;
  request.set_container_id(req.id());
  request.set_resources_json(req.resources().value());
  try {
    sb->agent()->api().UpdateContainer(request, with_timeout(std::chrono::seconds(30)));
  } catch (...) {
    rethrow_agent_error("update resources of container " + req.id());
  }
  log_.info("updated", {{"id", req.id()}});
  return {};
}

task::StatsResponse TaskService::Stats(Ctx&, const task::StatsRequest& req) {
  find_container(req.id());
  auto sb = live_sandbox();
  v1::ContainerStatsRequest request;
  request.set_container_id(req.id());
  v1::ContainerStatsResponse stats;
  try {
    stats = sb->agent()->api().ContainerStats(request, with_timeout(std::chrono::seconds(10)));
  } catch (...) {
    rethrow_agent_error("stats of container " + req.id());
  }
  task::StatsResponse reply;
  *reply.mutable_stats() = metrics_from_agent_stats(stats);
  return reply;
}

task::PidsResponse TaskService::Pids(Ctx&, const task::PidsRequest& req) {
  find_container(req.id());
  auto sb = live_sandbox();
  v1::ListProcessesRequest request;
  request.set_container_id(req.id());
  v1::ListProcessesResponse list;
  try {
    list = sb->agent()->api().ListProcesses(request, with_timeout(std::chrono::seconds(10)));
  } catch (...) {
    rethrow_agent_error("list processes of container " + req.id());
  }
  task::PidsResponse reply;
  for (const auto& proc : list.processes()) {
    auto* info = reply.add_processes();
    info->set_pid(proc.pid());
    if (!proc.exec_id().empty()) {
      containerd::runc::v1::ProcessDetails details;
      details.set_exec_id(proc.exec_id());
      info->mutable_info()->set_type_url(details.GetTypeName());
      info->mutable_info()->set_value(details.SerializeAsString());
    }
  }
  return reply;
}

// ---------------------------------------------------------------------------
// Pause, Resume, Checkpoint

TaskService::Empty TaskService::Pause(Ctx&, const task::PauseRequest& req) {
  auto c = find_container(req.id());
  auto sb = live_sandbox();
  {
    std::lock_guard lock(mutex_);
    if (c->init->status != types::RUNNING) {
      throw StatusError(Code::kFailedPrecondition, "pause container " + req.id() + ": it is not running");
    }
    c->init->status = types::PAUSING;
  }
  try {
    sb->pause();
  } catch (...) {
    std::lock_guard lock(mutex_);
    if (c->init->status == types::PAUSING) c->init->status = types::RUNNING;
    rethrow_agent_error("pause the VM of container " + req.id());
  }
  {
    std::lock_guard lock(mutex_);
    if (c->init->status == types::PAUSING) c->init->status = types::PAUSED;
  }
  events::TaskPaused event;
  event.set_container_id(req.id());
  events_.publish(event);
  log_.info("paused", {{"id", req.id()}});
  return {};
}

TaskService::Empty TaskService::Resume(Ctx&, const task::ResumeRequest& req) {
  auto c = find_container(req.id());
  auto sb = live_sandbox();
  {
    std::lock_guard lock(mutex_);
    if (c->init->status != types::PAUSED) {
      throw StatusError(Code::kFailedPrecondition, "resume container " + req.id() + ": it is not paused");
    }
  }
  try {
    sb->resume();
  } catch (...) {
    rethrow_agent_error("resume the VM of container " + req.id());
  }
  {
    std::lock_guard lock(mutex_);
    if (c->init->status == types::PAUSED) c->init->status = types::RUNNING;
  }
  events::TaskResumed event;
  event.set_container_id(req.id());
  events_.publish(event);
  log_.info("resumed", {{"id", req.id()}});
  return {};
}

TaskService::Empty TaskService::Checkpoint(Ctx&, const task::CheckpointTaskRequest& req) {
  throw StatusError(Code::kUnimplemented, "checkpoint of container " + req.id() + ": not supported by ember");
}

// ---------------------------------------------------------------------------
// Connect, Shutdown

task::ConnectResponse TaskService::Connect(Ctx&, const task::ConnectRequest& req) {
  task::ConnectResponse reply;
  reply.set_shim_pid(static_cast<uint32_t>(::getpid()));
  std::lock_guard lock(mutex_);
  auto it = containers_.find(req.id());
  if (it != containers_.end()) reply.set_task_pid(it->second->init->pid);
  return reply;
}

TaskService::Empty TaskService::Shutdown(Ctx&, const task::ShutdownRequest& req) {
  {
    std::lock_guard lock(mutex_);
    // containerd sends Shutdown after every Delete; a pod shim keeps serving
    // its other containers.
    if (!containers_.empty() || !creating_.empty()) return {};
  }
  log_.info("shutdown", {{"id", req.id()}});
  if (options_.on_shutdown) options_.on_shutdown();
  return {};
}

void TaskService::shutdown() {
  std::vector<std::thread> threads;
  std::vector<std::shared_ptr<Container>> containers;
  std::shared_ptr<Sandbox> sb;
  {
    std::lock_guard lock(mutex_);
    if (shutting_down_ && finished_threads_.empty() && containers_.empty() && !sandbox_) return;
    shutting_down_ = true;
    changed_.notify_all();
    for (auto& [id, c] : containers_) containers.push_back(c);
    sb = sandbox_;
  }
  {
    std::lock_guard boot_lock(sandbox_mutex_);
    if (sb) sb->stop();  // wakes every waiter blocked in the agent
  }
  for (auto& c : containers) {
    std::vector<std::shared_ptr<Process>> procs{c->init};
    {
      std::lock_guard lock(mutex_);
      for (auto& [eid, e] : c->execs) procs.push_back(e);
    }
    for (auto& p : procs) {
      if (p->io) p->io->abort();
      std::lock_guard lock(mutex_);
      if (p->waiter.joinable()) threads.push_back(std::move(p->waiter));
    }
  }
  {
    std::lock_guard lock(mutex_);
    for (auto& t : finished_threads_) threads.push_back(std::move(t));
    finished_threads_.clear();
  }
  for (auto& t : threads) {
    if (t.joinable()) t.join();
  }
  for (auto& c : containers) {
    for (auto* p : {&c->init}) (*p)->io.reset();
    cleanup_rootfs(c->bundle, c->disk.owned ? c->disk.path : "", log_);
    remove_container_state(c->bundle);
  }
  {
    std::lock_guard lock(mutex_);
    containers_.clear();
    if (sandbox_) {
      std::error_code ec;
      std::filesystem::remove_all(sandbox_->vm_dir(), ec);
    }
    sandbox_.reset();
  }
}

}  // namespace ember::shim
