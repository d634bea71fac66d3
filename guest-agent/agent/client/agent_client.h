// Host-side client of ember-agent, for the shim and the tests: the ttrpc API
// (the generated ember::agent::v1::AgentClient stub over one connection) plus
// the stdio streams, each its own connection (proto/agent/agent.proto,
// "Stdio"). Works over any way of reaching the agent, given as a Dialer that
// returns a fresh connected stream socket: a unix socket (agent in host mode)
// or a Firecracker-style hybrid vsock socket after its CONNECT handshake.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "agent/agent.ttrpc.pb.h"
#include "guest-agent/agent/stream_preamble.h"
#include "proto/ttrpc/client.h"
#include "vmm/common/unique_fd.h"

namespace ember::agent {

class AgentClient {
 public:
  using Dialer = std::function<common::UniqueFd()>;

  // Connects the API connection at once (throws what the dialer throws).
  explicit AgentClient(Dialer dialer, ttrpc::ClientOptions options = {});
  ~AgentClient();
  AgentClient(const AgentClient&) = delete;
  AgentClient& operator=(const AgentClient&) = delete;

  // Every RPC of ember.agent.v1.Agent, blocking or async; throws
  // ttrpc::StatusError.
  v1::AgentClient& api() { return stub_; }
  ttrpc::Client& connection() { return *client_; }

  // Opens one stdio stream of a process: dials, sends the preamble, waits
  // for "OK". Throws common::Error with the agent's message on "ERROR ...".
  // The returned socket carries raw bytes: write stdin and shutdown(SHUT_WR)
  // for EOF; read stdout/stderr until EOF.
  common::UniqueFd open_stream(const std::string& container_id, const std::string& exec_id,
                               StreamKind kind,
                               std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // Dialers.
  static Dialer unix_dialer(std::string path);
  // Firecracker's hybrid vsock: connect to the VMM's unix socket, send
  // "CONNECT <port>\n", expect "OK <host port>\n".
  static Dialer hybrid_vsock_dialer(std::string uds_path, uint32_t port = 1024,
                                    std::chrono::milliseconds timeout = std::chrono::seconds(10));

 private:
  Dialer dialer_;
  std::unique_ptr<ttrpc::Client> client_;
  v1::AgentClient stub_;
};

// Reads one '\n'-terminated line byte by byte (so nothing after it is
// consumed), waiting at most `timeout` in total. Throws on EOF, error,
// timeout or a line longer than `max`.
std::string read_line(int fd, std::chrono::milliseconds timeout, const std::string& what,
                      std::size_t max = 1024);

}  // namespace ember::agent
