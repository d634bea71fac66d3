#include "guest-agent/agent/connection_router.h"

#include <linux/vm_sockets.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>
#include <vector>

#include "vmm/common/error.h"

namespace ember::agent {
namespace {

constexpr std::size_t kMaxPreamble = 512;
// Connections that have not said what they are yet. A client may connect
// well before its first call, so there is no time limit; past this many the
// oldest is closed.
constexpr std::size_t kMaxPending = 64;

void send_line(int fd, const std::string& line) {
  // A fresh socket's send buffer always has room for one short line.
  (void)!::send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

}  // namespace

common::UniqueFd listen_on(const std::string& address) {
  if (address.rfind("unix:", 0) == 0) {
    std::string path = address.substr(5);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof addr.sun_path)
      throw common::Error("bad unix socket path " + path);
    std::memcpy(addr.sun_path, path.c_str(), path.size());
    common::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) common::throw_errno("socket for " + address);
    ::unlink(path.c_str());
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0)
      common::throw_errno("bind " + path);
    ::chmod(path.c_str(), 0600);
    if (::listen(fd.get(), 64) < 0) common::throw_errno("listen on " + path);
    return fd;
  }
  if (address == "vsock" || address.rfind("vsock:", 0) == 0) {
    unsigned port = kVsockPort;
    if (address.size() > 6) {
      try {
        port = static_cast<unsigned>(std::stoul(address.substr(6)));
      } catch (...) {
        throw common::Error("bad vsock port in " + address);
      }
    }
    sockaddr_vm addr{};
    addr.svm_family = AF_VSOCK;
    addr.svm_cid = VMADDR_CID_ANY;
    addr.svm_port = port;
    common::UniqueFd fd(::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) common::throw_errno("vsock socket for port " + std::to_string(port));
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
      common::throw_errno("bind vsock port " + std::to_string(port));
    }
    if (::listen(fd.get(), 64) < 0)
      common::throw_errno("listen on vsock port " + std::to_string(port));
    return fd;
  }
  throw common::Error("bad listen address \"" + address + "\": use unix:PATH or vsock[:PORT]");
}

ConnectionRouter::ConnectionRouter(common::EventLoop& loop, ContainerManager& manager,
                                   AgentLog& log, TtrpcSink ttrpc)
    : loop_(loop), manager_(manager), log_(log), ttrpc_(std::move(ttrpc)) {}

ConnectionRouter::~ConnectionRouter() {
  pending_.clear();
  for (auto& l : listeners_) loop_.remove(l.get());
}

void ConnectionRouter::serve(common::UniqueFd listener) {
  int fd = listener.get();
  listeners_.push_back(std::move(listener));
  loop_.add(fd, EPOLLIN, [this, fd](uint32_t) { on_accept(fd); });
}

void ConnectionRouter::on_accept(int listener) {
  for (;;) {
    common::UniqueFd conn(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!conn) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN) log_.warn("accept: " + common::errno_text(errno));
      return;
    }
    uint64_t key = next_key_++;
    auto p = std::make_unique<Pending>();
    p->fd = std::move(conn);
    p->watch =
        std::make_unique<FdWatch>(loop_, p->fd.get(), [this, key](uint32_t) { on_readable(key); });
    p->watch->set(EPOLLIN);
    pending_[key] = std::move(p);
    if (pending_.size() > kMaxPending) {
      log_.warn("too many silent connections: closing the oldest");
      drop(pending_.begin()->first);
    }
  }
}

void ConnectionRouter::drop(uint64_t key) {
  // Deferred: the caller may be a handler of this very connection.
  auto it = pending_.find(key);
  if (it == pending_.end()) return;
  std::shared_ptr<Pending> doomed(std::move(it->second));
  pending_.erase(it);
  doomed->watch->set(0);
  loop_.post([doomed] {});
}

void ConnectionRouter::on_readable(uint64_t key) {
  auto it = pending_.find(key);
  if (it == pending_.end()) return;
  Pending& p = *it->second;
  if (p.line.empty()) {
    // Peek, so a ttrpc connection reaches the server with its first frame intact.
    unsigned char first = 0;
    ssize_t n = ::recv(p.fd.get(), &first, 1, MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) return drop(key);
    if (first == 0) {
      common::UniqueFd fd = std::move(p.fd);
      drop(key);
      ttrpc_(std::move(fd));
      return;
    }
    if (first != static_cast<unsigned char>(kStreamMagic[0])) {
      log_.warn("connection closed: neither ttrpc nor a stream preamble (first byte " +
                std::to_string(first) + ")");
      return drop(key);
    }
  }
  // Byte by byte up to the newline: what follows belongs to the stream.
  for (;;) {
    char ch;
    ssize_t n = ::recv(p.fd.get(), &ch, 1, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) return drop(key);
    if (ch == '\n') break;
    p.line.push_back(ch);
    if (p.line.size() > kMaxPreamble) {
      send_line(p.fd.get(), "ERROR stream preamble too long\n");
      return drop(key);
    }
  }
  route_stream(key, p);
}

void ConnectionRouter::route_stream(uint64_t key, Pending& p) {
  p.watch->set(0);  // the stream's pump watches this fd from now on
  const std::string& line = p.line;
  try {
    StreamPreamble pre = parse_stream_preamble(line);
    manager_.attach_stream(pre.container_id, pre.exec_id, pre.kind, p.fd,
                           [](int conn) { send_line(conn, "OK\n"); });
    log_.debug("stream attached: " + line);
  } catch (const std::exception& e) {
    log_.warn("stream rejected (" + line + "): " + e.what());
    if (p.fd) send_line(p.fd.get(), std::string("ERROR ") + e.what() + "\n");
  }
  drop(key);
}

}  // namespace ember::agent
