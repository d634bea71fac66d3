// A minimal QEMU Machine Protocol client (QEMU docs/interop/qmp-spec.rst):
// read the greeting, negotiate with `qmp_capabilities`, then one command at a
// time, each answered by {"return": ...} or {"error": {...}}; asynchronous
// {"event": ...} lines in between are skipped.
#pragma once

#include <chrono>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "vmm/common/unique_fd.h"

namespace ember::shim {

class QmpClient {
 public:
  QmpClient() = default;
  // Takes a connected stream socket (our end of `-chardev socket,fd=N -mon mode=control`).
  explicit QmpClient(common::UniqueFd socket) : fd_(std::move(socket)) {}

  // Reads the greeting and sends qmp_capabilities. Throws common::Error.
  void negotiate(std::chrono::milliseconds timeout);
  // Runs `command` (with `arguments` when not null); returns the "return"
  // value. Throws common::Error "qmp stop: <class>: <desc>" on an error reply,
  // EOF or timeout.
  nlohmann::json execute(const std::string& command, const nlohmann::json& arguments = nullptr,
                         std::chrono::milliseconds timeout = std::chrono::seconds(10));
  bool connected() const { return fd_.valid(); }

 private:
  nlohmann::json read_message(std::chrono::steady_clock::time_point deadline, const std::string& what);

  std::mutex mutex_;
  common::UniqueFd fd_;
  std::string buffer_;
};

}  // namespace ember::shim
