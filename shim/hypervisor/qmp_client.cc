#include "shim/hypervisor/qmp_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vmm/common/error.h"

namespace ember::shim {

nlohmann::json QmpClient::read_message(std::chrono::steady_clock::time_point deadline, const std::string& what) {
  while (true) {
    auto nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      if (line.find_first_not_of(" \r\t") == std::string::npos) continue;
      try {
        return nlohmann::json::parse(line);
      } catch (const std::exception& e) {
        throw common::Error(what + ": unparsable QMP message: " + line);
      }
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) throw common::Error(what + ": no answer from QEMU in time");
    pollfd pfd{fd_.get(), POLLIN, 0};
    int n = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;
    char buf[4096];
    ssize_t got = ::read(fd_.get(), buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) throw common::Error(what + ": QEMU closed the QMP connection");
    buffer_.append(buf, static_cast<size_t>(got));
  }
}

void QmpClient::negotiate(std::chrono::milliseconds timeout) {
  {
    std::lock_guard lock(mutex_);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    nlohmann::json greeting = read_message(deadline, "qmp greeting");
    if (!greeting.contains("QMP")) throw common::Error("qmp greeting: unexpected " + greeting.dump());
  }
  execute("qmp_capabilities", nullptr, timeout);
}

nlohmann::json QmpClient::execute(const std::string& command, const nlohmann::json& arguments,
                                  std::chrono::milliseconds timeout) {
  std::lock_guard lock(mutex_);
  std::string what = "qmp " + command;
  if (!fd_) throw common::Error(what + ": not connected");
  nlohmann::json request = {{"execute", command}};
  if (!arguments.is_null()) request["arguments"] = arguments;
  std::string line = request.dump() + "\n";
  size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::send(fd_.get(), line.data() + done, line.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) common::throw_errno(what + ": send");
    done += static_cast<size_t>(n);
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    nlohmann::json msg = read_message(deadline, what);
    if (msg.contains("event")) continue;
    if (msg.contains("return")) return msg["return"];
    if (msg.contains("error")) {
      const auto& e = msg["error"];
      throw common::Error(what + ": " + e.value("class", std::string("Error")) + ": " +
                          e.value("desc", std::string("(no description)")));
    }
  }
}

}  // namespace ember::shim
