// The agent's container runtime core: containers and their processes, driven
// by crun, owned by one event loop thread. Everything here runs on that
// thread (the RPC layer posts to it and waits); operations that wait for crun
// or for an exit complete through a Done<T> callback, so a slow container
// never blocks the others.
//
// Process life cycle and what the host sees:
//   CREATED (init: crun create done; exec: registered) -> RUNNING (started)
//   -> reaped (exit status known) -> output drained and streams closed
//   -> STOPPED: only now WaitProcess returns and the exit event is queued,
//   after the OOM event the exit may have caused.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "guest-agent/agent/agent_error.h"
#include "guest-agent/agent/agent_log.h"
#include "guest-agent/agent/cgroups.h"
#include "guest-agent/agent/crun.h"
#include "guest-agent/agent/event_queue.h"
#include "guest-agent/agent/loop_timer.h"
#include "guest-agent/agent/memory_watch.h"
#include "guest-agent/agent/reaper.h"
#include "guest-agent/agent/rootfs.h"
#include "guest-agent/agent/stdio_pump.h"
#include "guest-agent/agent/stream_preamble.h"
#include "vmm/common/event_loop.h"
#include "vmm/common/unique_fd.h"

namespace ember::agent {

struct StdioSpec {
  bool terminal = false;
  bool want_stdin = false, want_stdout = false, want_stderr = false;  // streams the host attaches
  uint32_t width = 0, height = 0;
};

enum class ProcessStatus { kCreated = 1, kRunning = 2, kStopped = 3 };

struct ExitInfo {
  uint32_t pid = 0;
  uint32_t exit_status = 0;
  std::chrono::system_clock::time_point exited_at;
  bool oom_killed = false;
};

struct ProcessState {
  std::string container_id, exec_id;
  uint32_t pid = 0;
  ProcessStatus status = ProcessStatus::kCreated;
  bool terminal = false;
  uint32_t exit_status = 0;
  std::chrono::system_clock::time_point exited_at;
  std::string bundle;
};

struct CreateParams {
  std::string container_id;
  std::string spec_json;
  RootfsSpec rootfs;
  StdioSpec stdio;
};

struct ExecParams {
  std::string container_id, exec_id;
  std::string process_json;
  StdioSpec stdio;
};

struct ProcessListEntry {
  uint32_t pid = 0;
  std::string exec_id;
  bool known = false;  // the pid is the container's init or one of its execs
};

class ContainerManager {
 public:
  struct Config {
    std::string root_dir;                  // containers/, crun/, s/ live here
    std::string cgroup_parent = "/ember";  // containers get <parent>/<id>
    Crun::Options crun;                    // state_dir and log_dir are filled in
    OutputPump::Timing timing;
    // While containers exist, this often: every watched pid is checked to
    // still be the agent's child (an exit must never be lost), each cgroup's
    // OOM counter is read again (in case a notification was missed), and
    // each container's memory is sampled for thrashing at its limit.
    std::chrono::milliseconds health_interval{5000};
    MemoryThrashWatch::Thresholds thrash;
  };

  ContainerManager(common::EventLoop& loop, Reaper& reaper, AgentLog& log, Cgroups cgroups,
                   EventQueue& events, Config config);
  ~ContainerManager();
  ContainerManager(const ContainerManager&) = delete;
  ContainerManager& operator=(const ContainerManager&) = delete;

  // Loop thread only, all of them. Synchronous ones throw AgentError /
  // common::Error; asynchronous ones report through `done`, exactly once.
  void create(CreateParams params, Done<uint32_t> done);
  void exec(ExecParams params);
  void start(const std::string& id, const std::string& exec_id, Done<uint32_t> done);
  void signal(const std::string& id, const std::string& exec_id, int signal, bool all,
              Done<Unit> done);
  void wait(const std::string& id, const std::string& exec_id, Done<ExitInfo> done);
  ProcessState state(const std::string& id, const std::string& exec_id) const;
  void remove(const std::string& id, const std::string& exec_id, Done<ExitInfo> done);
  void resize(const std::string& id, const std::string& exec_id, uint32_t width, uint32_t height);
  void close_stdin(const std::string& id, const std::string& exec_id);
  void update(const std::string& id, const std::string& resources_json, Done<Unit> done);
  CgroupStats stats(const std::string& id) const;
  std::string cgroup_path(const std::string& id) const;
  std::vector<ProcessListEntry> list_processes(const std::string& id) const;
  // A host stream connection (the preamble was already read). Validates,
  // calls accepted(fd) (to send "OK") and only then takes `conn`; on error
  // it throws and leaves `conn` with the caller.
  void attach_stream(const std::string& id, const std::string& exec_id, StreamKind kind,
                     common::UniqueFd& conn, const std::function<void(int)>& accepted);
  // Kills and deletes every container (guest shutdown).
  void shutdown_all(Done<Unit> done);

  std::size_t container_count() const { return containers_.size(); }
  const Cgroups& cgroups() const { return cgroups_; }

 private:
  struct Process;
  struct Container;

  Container& find_container(const std::string& id) const;
  Process& find_process(const std::string& id, const std::string& exec_id) const;
  Container* lookup_container(const std::string& id) const;
  Process* lookup_process(const std::string& id, const std::string& exec_id) const;

  // Pipes or a console socket for a process about to be created/started.
  void prepare_stdio(Container& c, Process& p);
  // After crun sent the pty master over the console socket.
  void receive_console(Container& c, Process& p);
  void make_pumps(Container& c, Process& p, common::UniqueFd in, common::UniqueFd out,
                  common::UniqueFd err);
  void watch_exit(Container& c, Process& p, uint64_t since);
  void on_reaped(const std::string& id, const std::string& exec_id, int wait_status);
  void on_output_done(const std::string& id, const std::string& exec_id);
  void try_release(Container& c, Process& p);
  void check_oom(Container& c);
  void start_oom_watch(Container& c);
  void arm_health_check();
  void health_check();
  void check_memory(Container& c);
  void on_lost(pid_t pid);
  // Undoes create: unmounts, removes the bundle and cgroup. Returns errors.
  std::string cleanup(Container& c);
  void finish_create(const std::string& id, Crun::Result result, uint64_t since,
                     Done<uint32_t> done);
  void finish_exec_start(const std::string& id, const std::string& exec_id, Crun::Result result,
                         uint64_t since, Done<uint32_t> done);
  std::optional<std::string> sandbox_namespace(const std::string& sandbox_id,
                                               const std::string& type) const;

  common::EventLoop& loop_;
  Reaper& reaper_;
  AgentLog& log_;
  Cgroups cgroups_;
  EventQueue& events_;
  Config config_;
  Crun crun_;
  std::map<std::string, std::unique_ptr<Container>> containers_;
  LoopTimer health_timer_;
  uint64_t next_socket_ = 1;
  bool has_apparmor_ = false;
  bool has_selinux_ = false;
};

// containerd-style identifiers: 1-128 of [A-Za-z0-9_.-], not starting with
// '.' or '-' (they become file names). Throws AgentError kInvalidArgument.
void validate_id(const std::string& id, const std::string& what);

// containerd's exit status convention: exit code, or 128+signal.
uint32_t exit_status_from_wait(int wait_status);

}  // namespace ember::agent
