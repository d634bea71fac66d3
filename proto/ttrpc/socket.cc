#include "proto/ttrpc/socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cstring>

#include "vmm/common/error.h"

namespace ember::ttrpc {
namespace {

sockaddr_un unix_address(const std::string& path, const char* what) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    throw common::Error(std::string(what) + " unix socket \"" + path + "\": path must be 1 to " +
                        std::to_string(sizeof(addr.sun_path) - 1) + " bytes long");
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

common::UniqueFd unix_socket(const std::string& path, const char* what) {
  common::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) common::throw_errno(std::string(what) + " unix socket \"" + path + "\": socket");
  return fd;
}

}  // namespace

common::UniqueFd dial_unix(const std::string& address) {
  std::string path = address;
  if (path.starts_with("unix://")) path.erase(0, 7);
  sockaddr_un addr = unix_address(path, "connect to");
  common::UniqueFd fd = unix_socket(path, "connect to");
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    common::throw_errno("connect to unix socket \"" + path + "\"");
  }
  return fd;
}

common::UniqueFd listen_unix(const std::string& path) {
  sockaddr_un addr = unix_address(path, "listen on");
  common::UniqueFd fd = unix_socket(path, "listen on");
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    common::throw_errno("bind unix socket \"" + path + "\"");
  }
  // Only our uid may connect (containerd's shims use 0600 too); the server
  // also checks SO_PEERCRED.
  if (::chmod(path.c_str(), 0600) != 0) common::throw_errno("chmod 0600 \"" + path + "\"");
  if (::listen(fd.get(), SOMAXCONN) != 0) {
    common::throw_errno("listen on unix socket \"" + path + "\"");
  }
  return fd;
}

bool is_unix_socket(int fd) {
  int domain = 0;
  socklen_t len = sizeof(domain);
  return ::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 && domain == AF_UNIX;
}

std::optional<ucred> peer_credentials(int fd) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return std::nullopt;
  return cred;
}

}  // namespace ember::ttrpc
