#include "guest-agent/agent/agent_service.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <condition_variable>
#include <fstream>
#include <mutex>
#include <optional>

#include "guest-agent/agent/block_devices.h"
#include "proto/ttrpc/status.h"

namespace ember::agent {
namespace {

using ttrpc::Code;

Code to_code(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kInvalidArgument:
      return Code::kInvalidArgument;
    case ErrorKind::kNotFound:
      return Code::kNotFound;
    case ErrorKind::kAlreadyExists:
      return Code::kAlreadyExists;
    case ErrorKind::kFailedPrecondition:
      return Code::kFailedPrecondition;
    case ErrorKind::kInternal:
      return Code::kInternal;
    case ErrorKind::kUnavailable:
      return Code::kUnavailable;
  }
  return Code::kUnknown;
}

void set_timestamp(google::protobuf::Timestamp* ts, std::chrono::system_clock::time_point t) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  ts->set_seconds(ns / 1000000000);
  ts->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

StdioSpec to_stdio(const v1::StdioOptions& s) {
  StdioSpec out;
  out.terminal = s.terminal();
  out.want_stdin = s.stdin();
  out.want_stdout = s.stdout();
  out.want_stderr = s.stderr();
  out.width = s.width();
  out.height = s.height();
  return out;
}

FilesystemSpec to_filesystem(const v1::Filesystem& f) {
  FilesystemSpec out;
  out.device = f.device();
  out.serial = f.serial();
  out.fstype = f.fstype();
  out.options.assign(f.options().begin(), f.options().end());
  return out;
}

// "Key:   1234 kB" lines (/proc/meminfo, /proc/self/status) -> bytes.
uint64_t kib_field_bytes(const std::string& file, const std::string& key) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) != 0) continue;
    try {
      return std::stoull(line.substr(key.size() + 1)) * 1024;
    } catch (...) {
      return 0;
    }
  }
  return 0;
}

[[noreturn]] void throw_invalid(const std::string& message) {
  throw ttrpc::StatusError(Code::kInvalidArgument, message);
}

}  // namespace

ttrpc::StatusError to_status_error(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const ttrpc::StatusError& e) {
    return e;
  } catch (const AgentError& e) {
    return ttrpc::StatusError(to_code(e.kind()), e.what());
  } catch (const std::exception& e) {
    return ttrpc::StatusError(Code::kInternal, e.what());
  }
}

AgentService::AgentService(common::EventLoop& loop, ContainerManager& manager, EventQueue& events,
                           AgentLog& log, Hooks hooks)
    : loop_(loop), manager_(manager), events_(events), log_(log), hooks_(std::move(hooks)) {}

uint64_t AgentService::uptime_ms() const {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now() - started_)
                                   .count());
}

template <class T>
T AgentService::on_loop(ttrpc::Context& ctx, std::function<void(Done<T>)> op) {
  struct State {
    std::mutex mutex;
    std::condition_variable cv;
    std::optional<T> value;
    std::exception_ptr error;
    bool done = false;
    bool cancelled = false;
  };
  auto st = std::make_shared<State>();
  Done<T> complete = [st](Result<T> r) {
    std::lock_guard lock(st->mutex);
    if (st->done) return;
    if (r.ok()) {
      st->value = std::move(r.value());
    } else {
      st->error = r.error();
    }
    st->done = true;
    st->cv.notify_all();
  };
  loop_.post([op = std::move(op), complete] {
    try {
      op(complete);
    } catch (...) {
      complete(Result<T>::current_exception());
    }
  });
  ctx.on_cancel([st] {
    std::lock_guard lock(st->mutex);
    st->cancelled = true;
    st->cv.notify_all();
  });
  std::unique_lock lock(st->mutex);
  st->cv.wait(lock, [&] { return st->done || st->cancelled; });
  if (!st->done) throw ttrpc::StatusError(Code::kCancelled, "call cancelled");
  if (st->error) throw to_status_error(st->error);
  return std::move(*st->value);
}

// --- containers -------------------------------------------------------------

v1::CreateContainerResponse AgentService::CreateContainer(ttrpc::Context& ctx,
                                                          const v1::CreateContainerRequest& req) {
  CreateParams params;
  params.container_id = req.container_id();
  params.spec_json = req.spec_json();
  params.stdio = to_stdio(req.stdio());
  if (req.rootfs().has_upper()) params.rootfs.upper = to_filesystem(req.rootfs().upper());
  for (const auto& l : req.rootfs().lowers()) params.rootfs.lowers.push_back(to_filesystem(l));
  params.rootfs.readonly = req.rootfs().readonly();
  uint32_t pid =
      on_loop<uint32_t>(ctx, [this, params = std::move(params)](Done<uint32_t> done) mutable {
        manager_.create(std::move(params), std::move(done));
      });
  v1::CreateContainerResponse resp;
  resp.set_pid(pid);
  return resp;
}

v1::ExecProcessResponse AgentService::ExecProcess(ttrpc::Context& ctx,
                                                  const v1::ExecProcessRequest& req) {
  ExecParams params;
  params.container_id = req.container_id();
  params.exec_id = req.exec_id();
  params.process_json = req.process_json();
  params.stdio = to_stdio(req.stdio());
  on_loop<Unit>(ctx, [this, params = std::move(params)](Done<Unit> done) mutable {
    manager_.exec(std::move(params));
    done(Unit{});
  });
  return {};
}

v1::StartProcessResponse AgentService::StartProcess(ttrpc::Context& ctx,
                                                    const v1::StartProcessRequest& req) {
  uint32_t pid = on_loop<uint32_t>(
      ctx, [this, id = req.container_id(), eid = req.exec_id()](Done<uint32_t> done) {
        manager_.start(id, eid, std::move(done));
      });
  v1::StartProcessResponse resp;
  resp.set_pid(pid);
  return resp;
}

v1::SignalProcessResponse AgentService::SignalProcess(ttrpc::Context& ctx,
                                                      const v1::SignalProcessRequest& req) {
  on_loop<Unit>(ctx, [this, req](Done<Unit> done) {
    manager_.signal(req.container_id(), req.exec_id(), static_cast<int>(req.signal()), req.all(),
                    std::move(done));
  });
  return {};
}

v1::WaitProcessResponse AgentService::WaitProcess(ttrpc::Context& ctx,
                                                  const v1::WaitProcessRequest& req) {
  ExitInfo info =
      on_loop<ExitInfo>(ctx, [this, id = req.container_id(), eid = req.exec_id()](
                                 Done<ExitInfo> done) { manager_.wait(id, eid, std::move(done)); });
  v1::WaitProcessResponse resp;
  resp.set_exit_status(info.exit_status);
  set_timestamp(resp.mutable_exited_at(), info.exited_at);
  resp.set_oom_killed(info.oom_killed);
  return resp;
}

v1::ProcessStateResponse AgentService::ProcessState(ttrpc::Context& ctx,
                                                    const v1::ProcessStateRequest& req) {
  agent::ProcessState s = on_loop<agent::ProcessState>(
      ctx, [this, id = req.container_id(), eid = req.exec_id()](Done<agent::ProcessState> done) {
        done(manager_.state(id, eid));
      });
  v1::ProcessStateResponse resp;
  resp.set_container_id(s.container_id);
  resp.set_exec_id(s.exec_id);
  resp.set_pid(s.pid);
  resp.set_status(static_cast<v1::ProcessStatus>(static_cast<int>(s.status)));
  resp.set_terminal(s.terminal);
  resp.set_exit_status(s.exit_status);
  if (s.status == ProcessStatus::kStopped) set_timestamp(resp.mutable_exited_at(), s.exited_at);
  resp.set_bundle(s.bundle);
  return resp;
}

v1::DeleteProcessResponse AgentService::DeleteProcess(ttrpc::Context& ctx,
                                                      const v1::DeleteProcessRequest& req) {
  ExitInfo info = on_loop<ExitInfo>(
      ctx, [this, id = req.container_id(), eid = req.exec_id()](Done<ExitInfo> done) {
        manager_.remove(id, eid, std::move(done));
      });
  v1::DeleteProcessResponse resp;
  resp.set_pid(info.pid);
  resp.set_exit_status(info.exit_status);
  set_timestamp(resp.mutable_exited_at(), info.exited_at);
  return resp;
}

v1::ResizePtyResponse AgentService::ResizePty(ttrpc::Context& ctx,
                                              const v1::ResizePtyRequest& req) {
  // 0x0 is legal (TIOCSWINSZ takes it, containerd's runc shim passes it on):
  // some terminals send it from `ctr run -t`. Only what a winsize cannot
  // hold is refused.
  if (req.width() > 0xffff || req.height() > 0xffff) {
    throw_invalid("invalid terminal size " + std::to_string(req.width()) + "x" +
                  std::to_string(req.height()));
  }
  on_loop<Unit>(ctx, [this, req](Done<Unit> done) {
    manager_.resize(req.container_id(), req.exec_id(), req.width(), req.height());
    done(Unit{});
  });
  return {};
}

v1::CloseStdinResponse AgentService::CloseStdin(ttrpc::Context& ctx,
                                                const v1::CloseStdinRequest& req) {
  on_loop<Unit>(ctx, [this, id = req.container_id(), eid = req.exec_id()](Done<Unit> done) {
    manager_.close_stdin(id, eid);
    done(Unit{});
  });
  return {};
}

v1::UpdateContainerResponse AgentService::UpdateContainer(ttrpc::Context& ctx,
                                                          const v1::UpdateContainerRequest& req) {
  on_loop<Unit>(ctx, [this, id = req.container_id(), json = req.resources_json()](Done<Unit> done) {
    manager_.update(id, json, std::move(done));
  });
  return {};
}

v1::ContainerStatsResponse AgentService::ContainerStats(ttrpc::Context& ctx,
                                                        const v1::ContainerStatsRequest& req) {
  struct Out {
    CgroupStats stats;
    std::string path;
  };
  Out out = on_loop<Out>(ctx, [this, id = req.container_id()](Done<Out> done) {
    done(Out{manager_.stats(id), manager_.cgroup_path(id)});
  });
  const CgroupStats& s = out.stats;
  v1::ContainerStatsResponse resp;
  resp.set_cgroup_version(static_cast<uint32_t>(s.version));
  resp.set_cgroup_path(out.path);
  auto* cpu = resp.mutable_cpu();
  cpu->set_usage_usec(s.cpu_usage_usec);
  cpu->set_user_usec(s.cpu_user_usec);
  cpu->set_system_usec(s.cpu_system_usec);
  cpu->set_nr_periods(s.cpu_nr_periods);
  cpu->set_nr_throttled(s.cpu_nr_throttled);
  cpu->set_throttled_usec(s.cpu_throttled_usec);
  for (uint64_t v : s.cpu_percpu_nsec) cpu->add_percpu_usage_nsec(v);
  auto* mem = resp.mutable_memory();
  mem->set_usage(s.mem_usage);
  mem->set_limit(s.mem_limit);
  mem->set_max_usage(s.mem_max_usage);
  mem->set_swap_usage(s.mem_swap_usage);
  mem->set_swap_limit(s.mem_swap_limit);
  mem->set_failcnt(s.mem_failcnt);
  mem->set_oom_kills(s.mem_oom_kills);
  for (const auto& [k, v] : s.mem_stat) (*mem->mutable_stat())[k] = v;
  mem->set_inactive_file(s.mem_inactive_file);
  mem->set_rss(s.mem_rss);
  mem->set_cache(s.mem_cache);
  resp.mutable_pids()->set_current(s.pids_current);
  resp.mutable_pids()->set_limit(s.pids_limit);
  return resp;
}

v1::ListProcessesResponse AgentService::ListProcesses(ttrpc::Context& ctx,
                                                      const v1::ListProcessesRequest& req) {
  auto list = on_loop<std::vector<ProcessListEntry>>(
      ctx, [this, id = req.container_id()](Done<std::vector<ProcessListEntry>> done) {
        done(manager_.list_processes(id));
      });
  v1::ListProcessesResponse resp;
  for (const auto& e : list) {
    auto* p = resp.add_processes();
    p->set_pid(e.pid);
    p->set_exec_id(e.exec_id);
  }
  return resp;
}

v1::WaitEventResponse AgentService::WaitEvent(ttrpc::Context& ctx,
                                              const v1::WaitEventRequest& req) {
  std::optional<std::chrono::steady_clock::time_point> deadline = ctx.deadline();
  if (req.timeout_ms() > 0) {
    auto t = std::chrono::steady_clock::now() + std::chrono::milliseconds(req.timeout_ms());
    if (!deadline || t < *deadline) deadline = t;
  }
  ctx.on_cancel([this] { events_.wake_all(); });
  auto event =
      events_.wait_next(req.after_sequence(), deadline, [&ctx] { return ctx.cancelled(); });
  v1::WaitEventResponse resp;
  resp.set_oldest_sequence(events_.oldest_sequence());
  if (!event) {
    if (ctx.cancelled()) throw ttrpc::StatusError(Code::kCancelled, "call cancelled");
    return resp;
  }
  resp.set_sequence(event->sequence);
  if (event->kind == AgentEvent::Kind::kOom) {
    resp.mutable_oom()->set_container_id(event->container_id);
  } else {
    auto* e = resp.mutable_exit();
    e->set_container_id(event->container_id);
    e->set_exec_id(event->exec_id);
    e->set_pid(event->pid);
    e->set_exit_status(event->exit_status);
    set_timestamp(e->mutable_exited_at(), event->exited_at);
    e->set_oom_killed(event->oom_killed);
  }
  return resp;
}

// --- the guest --------------------------------------------------------------

v1::PingResponse AgentService::Ping(ttrpc::Context&, const v1::PingRequest&) {
  v1::PingResponse resp;
  resp.set_agent_version(kAgentVersion);
  resp.set_uptime_ms(uptime_ms());
  return resp;
}

v1::GuestInfoResponse AgentService::GuestInfo(ttrpc::Context& ctx, const v1::GuestInfoRequest&) {
  struct Counts {
    uint32_t containers;
    int cgroup_version;
  };
  Counts counts = on_loop<Counts>(ctx, [this](Done<Counts> done) {
    done(Counts{static_cast<uint32_t>(manager_.container_count()), manager_.cgroups().version()});
  });
  v1::GuestInfoResponse resp;
  resp.set_agent_version(kAgentVersion);
  utsname u{};
  if (::uname(&u) == 0) {
    resp.set_kernel_release(u.release);
    resp.set_kernel_version(u.version);
  }
  resp.set_memory_total_bytes(kib_field_bytes("/proc/meminfo", "MemTotal"));
  resp.set_memory_available_bytes(kib_field_bytes("/proc/meminfo", "MemAvailable"));
  resp.set_agent_rss_bytes(kib_field_bytes("/proc/self/status", "VmRSS"));
  resp.set_agent_anonymous_bytes(kib_field_bytes("/proc/self/smaps_rollup", "Anonymous"));
  resp.set_uptime_ms(uptime_ms());
  resp.set_cpus(static_cast<uint32_t>(std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN))));
  resp.set_cgroup_version(static_cast<uint32_t>(counts.cgroup_version));
  resp.set_pid1(hooks_.pid1);
  resp.set_containers(counts.containers);
  return resp;
}

v1::BlockDeviceChangedResponse AgentService::BlockDeviceChanged(
    ttrpc::Context&, const v1::BlockDeviceChangedRequest& req) {
  // Polls on this handler thread: waiting for a device is not container
  // state, and must not hold up the event loop.
  auto timeout = std::chrono::milliseconds(req.timeout_ms() ? req.timeout_ms() : 5000);
  try {
    std::string device = resolve_block_device(req.device(), req.serial());
    uint64_t size = wait_for_block_device(device, req.expected_size_bytes(), timeout);
    flush_block_device(device);
    log_.info("block device " + device + " ready, " + std::to_string(size) + " bytes");
    v1::BlockDeviceChangedResponse resp;
    resp.set_device(device);
    resp.set_size_bytes(size);
    return resp;
  } catch (const common::Error& e) {
    throw ttrpc::StatusError(Code::kFailedPrecondition, e.what());
  }
}

v1::ShutdownResponse AgentService::Shutdown(ttrpc::Context&, const v1::ShutdownRequest& req) {
  log_.info(std::string("shutdown requested (") + (req.power_off() ? "power off" : "reboot") + ")");
  if (hooks_.shutdown) hooks_.shutdown(req.power_off());
  return {};
}

v1::ReadLogResponse AgentService::ReadLog(ttrpc::Context&, const v1::ReadLogRequest& req) {
  std::size_t max = req.max_bytes() ? std::min<std::size_t>(req.max_bytes(), 1 << 20) : 64 * 1024;
  AgentLog::Chunk chunk = log_.read(req.offset(), max);
  v1::ReadLogResponse resp;
  resp.set_data(std::move(chunk.data));
  resp.set_offset(chunk.offset);
  resp.set_next_offset(chunk.next_offset);
  return resp;
}

}  // namespace ember::agent
