// Runs crun (the OCI runtime inside the guest) as a child process without
// blocking the event loop: spawn, then the Reaper reports its exit. crun's own
// error messages go to a per-invocation log file (`--log`), because its stdio
// are the container's stdio when it creates or execs a process.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "guest-agent/agent/agent_log.h"
#include "guest-agent/agent/reaper.h"

namespace ember::agent {

class Crun {
 public:
  struct Options {
    std::string binary = "crun";
    std::string state_dir;  // crun --root
    std::string log_dir;    // where per-call log files go
    // Extra global flags (e.g. "--cgroup-manager=cgroupfs").
    std::vector<std::string> global_flags;
  };
  struct Stdio {
    int in = -1;  // borrowed; -1 = /dev/null
    int out = -1;
    int err = -1;
  };
  struct Result {
    int wait_status = 0;
    std::string message;  // crun's error output (empty on success)
    bool ok() const;
    // "crun create c1: exited 1: <crun's message>"
    std::string describe(const std::string& what) const;
  };
  using Callback = std::function<void(Result)>;

  Crun(Options options, Reaper& reaper, AgentLog& log);

  // Loop thread only. `args` follow the global flags ("create", "--bundle", ...).
  // Throws if crun cannot be spawned; otherwise `done` runs on the loop.
  void run(std::vector<std::string> args, Stdio stdio, Callback done);

  const Options& options() const { return options_; }

 private:
  Options options_;
  Reaper& reaper_;
  AgentLog& log_;
  uint64_t next_call_ = 1;
};

}  // namespace ember::agent
