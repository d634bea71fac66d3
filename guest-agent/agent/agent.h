// Wires the agent together: event loop (main thread) with the reaper, the
// container manager and the connection router; the ttrpc server (its own IO
// thread and handler threads); signals. run() returns when the agent was
// asked to shut down (Shutdown RPC, SIGTERM, SIGINT / Ctrl-Alt-Del), after
// every container was killed and removed.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "guest-agent/agent/agent_log.h"

namespace ember::agent {

struct AgentOptions {
  std::vector<std::string> listen;       // "unix:/path", "vsock[:port]"
  std::string root_dir = "/run/ember";   // containers, crun state, sockets
  std::string cgroup_parent = "/ember";  // containers get <parent>/<id>
  std::string crun = "crun";
  std::vector<std::string> crun_flags;  // extra global crun flags
  bool pid1 = false;
  // See ContainerManager::Config::health_interval; 0 = off.
  std::chrono::milliseconds health_interval{5000};
};

struct AgentExit {
  bool power_off = false;
};

// Blocks the signals the agent takes through signalfds (SIGCHLD, SIGTERM,
// SIGINT) and ignores SIGPIPE. Call in main before any thread starts.
void block_agent_signals();

// Throws common::Error if setting up fails (listener, root dir).
AgentExit run_agent(const AgentOptions& options, AgentLog& log);

}  // namespace ember::agent
