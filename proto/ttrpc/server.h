// ttrpc server: accepts connections (unix listener, any listening stream
// socket, or already-connected fds), runs every request on its own handler
// thread and writes replies in completion order. See README.md.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "proto/ttrpc/service.h"
#include "vmm/common/unique_fd.h"

namespace ember::ttrpc {

struct ServerOptions {
  // Accept unix-socket peers only when SO_PEERCRED uid == geteuid(), as
  // containerd's shims do. Checked on accepted connections; other socket
  // families (AF_VSOCK has no credentials) are never checked.
  bool require_same_uid = true;
  // Handler threads start on demand and retire after 30 s idle.
  std::size_t max_handler_threads = 256;
  // How long shutdown() lets cancelled handlers answer before it answers
  // their calls UNAVAILABLE itself.
  std::chrono::milliseconds shutdown_grace{1000};
  // One line per notable event (peer rejected, protocol violation, IO
  // error). Called from the server's threads; may be empty.
  std::function<void(std::string_view line)> log{};
};

class Server {
 public:
  explicit Server(ServerOptions options = {});
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server();  // shutdown()

  // Services are borrowed and must outlive the Server. `name` overrides
  // service.service_name() (serve the task.v2 implementation as
  // "containerd.task.v3.Task" too). Throws common::Error on duplicates.
  void register_service(Service& service);
  void register_service(Service& service, std::string name);
  void register_method(std::string service, std::string method, Handler handler);

  // Creates a 0600 listening socket at `path` and serves it.
  void listen_unix(const std::string& path);
  // Accepts on an already-listening stream socket (unix, vsock, ...).
  void serve_listener(common::UniqueFd listening_fd);
  // Serves one already-connected stream fd (socketpair, vsock, hybrid-vsock
  // unix socket after its CONNECT/OK exchange).
  void serve_connection(common::UniqueFd connected_fd);

  // Stops accepting, cancels running calls, gives them shutdown_grace to
  // answer, answers the rest UNAVAILABLE "ttrpc: server shutting down",
  // closes every connection and joins all threads (waits for handlers that
  // ignore cancellation). Idempotent. Throws std::logic_error when called
  // from a handler thread: signal another thread instead.
  void shutdown();

  // Number of open connections (for tests and diagnostics).
  std::size_t connection_count() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace ember::ttrpc
