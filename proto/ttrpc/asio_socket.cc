#include "proto/ttrpc/asio_socket.h"

#include <sys/socket.h>

#include <string>

#include "vmm/common/error.h"

namespace ember::ttrpc {

boost::asio::generic::stream_protocol::socket adopt_stream_socket(boost::asio::io_context& io,
                                                                  common::UniqueFd fd) {
  const std::string what = "ttrpc: use fd " + std::to_string(fd.get()) + " as a connection";
  int domain = 0;
  int type = 0;
  int protocol = 0;
  socklen_t len = sizeof(int);
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) common::throw_errno(what);
  len = sizeof(int);
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_TYPE, &type, &len) != 0) common::throw_errno(what);
  len = sizeof(int);
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_PROTOCOL, &protocol, &len) != 0) {
    common::throw_errno(what);
  }
  if (type != SOCK_STREAM) throw common::Error(what + ": not a stream socket");
  boost::asio::generic::stream_protocol::socket socket(io);
  boost::system::error_code ec;
  socket.assign(boost::asio::generic::stream_protocol(domain, protocol), fd.get(), ec);
  if (ec) throw common::Error(what + ": " + ec.message());
  fd.release();
  return socket;
}

}  // namespace ember::ttrpc
