// Accepts connections on the agent's listener (vsock port 1024 in the guest,
// a unix socket in host mode) and sorts them by their first byte: a ttrpc
// frame starts with the high byte of a length <= 4 MiB, i.e. 0x00, and goes
// to the ttrpc server; a stdio stream starts with its preamble line
//   EMBER-STREAM 1 <container_id> <exec_id or "-"> <stdin|stdout|stderr>\n
// is answered "OK\n" or "ERROR <message>\n", and is handed to the
// ContainerManager. Of the connections that have not said anything yet, at
// most 64 are kept (the oldest goes first).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "guest-agent/agent/agent_log.h"
#include "guest-agent/agent/container_manager.h"
#include "guest-agent/agent/stdio_pump.h"
#include "guest-agent/agent/stream_preamble.h"
#include "vmm/common/event_loop.h"
#include "vmm/common/unique_fd.h"

namespace ember::agent {

inline constexpr unsigned kVsockPort = 1024;

// "unix:/path" or "vsock:PORT" (or "vsock" = port 1024). Creates, binds and
// listens; non-blocking, close-on-exec. Throws naming the address.
common::UniqueFd listen_on(const std::string& address);

class ConnectionRouter {
 public:
  using TtrpcSink = std::function<void(common::UniqueFd)>;
  ConnectionRouter(common::EventLoop& loop, ContainerManager& manager, AgentLog& log,
                   TtrpcSink ttrpc);
  ~ConnectionRouter();
  ConnectionRouter(const ConnectionRouter&) = delete;
  ConnectionRouter& operator=(const ConnectionRouter&) = delete;

  // Serves a listening socket (owned from now on).
  void serve(common::UniqueFd listener);

 private:
  struct Pending {
    common::UniqueFd fd;
    std::unique_ptr<FdWatch> watch;
    std::string line;
  };
  void on_accept(int listener);
  void on_readable(uint64_t key);
  void route_stream(uint64_t key, Pending& p);
  void drop(uint64_t key);

  common::EventLoop& loop_;
  ContainerManager& manager_;
  AgentLog& log_;
  TtrpcSink ttrpc_;
  std::vector<common::UniqueFd> listeners_;
  std::map<uint64_t, std::unique_ptr<Pending>> pending_;
  uint64_t next_key_ = 1;
};

}  // namespace ember::agent
