#include "guest-agent/agent/client/agent_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "proto/ttrpc/socket.h"
#include "vmm/common/error.h"

namespace ember::agent {
namespace {

void write_all(int fd, const std::string& data, const std::string& what) {
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) common::throw_errno(what);
    done += static_cast<std::size_t>(n);
  }
}

}  // namespace

std::string read_line(int fd, std::chrono::milliseconds timeout, const std::string& what,
                      std::size_t max) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string line;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      throw common::Error(what + ": timed out after " + std::to_string(timeout.count()) + " ms");
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) common::throw_errno(what);
    if (r == 0) continue;
    char ch;
    ssize_t n = ::recv(fd, &ch, 1, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) common::throw_errno(what);
    if (n == 0)
      throw common::Error(what + ": connection closed" +
                          (line.empty() ? "" : " after \"" + line + "\""));
    if (ch == '\n') return line;
    line.push_back(ch);
    if (line.size() > max) throw common::Error(what + ": reply line too long");
  }
}

AgentClient::AgentClient(Dialer dialer, ttrpc::ClientOptions options)
    : dialer_(std::move(dialer)),
      client_(std::make_unique<ttrpc::Client>(dialer_(), std::move(options))),
      stub_(*client_) {}

AgentClient::~AgentClient() { client_->close(); }

common::UniqueFd AgentClient::open_stream(const std::string& container_id,
                                          const std::string& exec_id, StreamKind kind,
                                          std::chrono::milliseconds timeout) {
  std::string what = std::string("open ") + stream_name(kind) + " of " +
                     (exec_id.empty() ? "container " + container_id
                                      : "process " + exec_id + " of " + container_id);
  common::UniqueFd fd = dialer_();
  write_all(fd.get(), format_stream_preamble({container_id, exec_id, kind}), what);
  std::string reply = read_line(fd.get(), timeout, what);
  if (reply == "OK") return fd;
  if (reply.rfind("ERROR ", 0) == 0) throw common::Error(what + ": " + reply.substr(6));
  throw common::Error(what + ": unexpected reply \"" + reply + "\"");
}

AgentClient::Dialer AgentClient::unix_dialer(std::string path) {
  return [path] { return ttrpc::dial_unix(path); };
}

AgentClient::Dialer AgentClient::hybrid_vsock_dialer(std::string uds_path, uint32_t port,
                                                     std::chrono::milliseconds timeout) {
  return [uds_path, port, timeout] {
    common::UniqueFd fd = ttrpc::dial_unix(uds_path);
    std::string what = "hybrid vsock CONNECT " + std::to_string(port) + " via " + uds_path;
    write_all(fd.get(), "CONNECT " + std::to_string(port) + "\n", what);
    std::string reply = read_line(fd.get(), timeout, what);
    if (reply.rfind("OK ", 0) != 0) throw common::Error(what + ": refused (\"" + reply + "\")");
    return fd;
  };
}

}  // namespace ember::agent
