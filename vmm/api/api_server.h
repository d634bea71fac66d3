// The API thread, `fc_api`: an epoll loop over the listening unix socket and
// up to 10 client connections (keep-alive, pipelining), turning each HTTP
// request into a VmmAction for the VMM thread and the answer back into
// Firecracker's response bytes (reference/firecracker-compat.md §1.1).
//
// Requests are served one at a time, in arrival order, like upstream: the
// thread waits for the VMM's answer before reading the next request, so
// answers on a connection come back in request order.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "vmm/api/api_channel.h"
#include "vmm/common/event_fd.h"
#include "vmm/common/unique_fd.h"
#include "vmm/logger/logger.h"
#include "vmm/logger/metrics.h"

namespace ember::vmm::api {

// Creates the API socket: socket+bind+listen. Throws common::SystemError
// (EADDRINUSE when the path exists: the caller prints Firecracker's "Failed
// to open the API socket at: ..." line).
common::UniqueFd bind_api_socket(const std::string& path);

struct ApiServerOptions {
  size_t max_payload = 51200;
  size_t max_connections = 10;
  // Called on the API thread once it serves (after "API server started."):
  // where process startup times are recorded.
  std::function<void()> on_started;
};

class ApiServer {
 public:
  ApiServer(common::UniqueFd listener, ApiServerOptions options, ApiChannel& channel,
            Logger& logger, Metrics& metrics);
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;
  ~ApiServer();

  // Spawns fc_api.
  void start();
  // Asks fc_api to finish (pending answers are flushed best-effort) and joins it.
  void stop();

  // The loop itself, for callers that bring their own thread (tests, fuzzer).
  void run();

 private:
  struct Connection;
  class Loop;

  common::UniqueFd listener_;
  ApiServerOptions options_;
  ApiChannel& channel_;
  Logger& logger_;
  Metrics& metrics_;
  common::EventFd stop_;
  std::thread thread_;
};

}  // namespace ember::vmm::api
