// Internal to ember-ttrpc: adopts a connected stream socket of any family
// (unix, vsock, socketpair) into Asio. A socket rather than a plain
// posix::stream_descriptor because Asio sends on sockets with MSG_NOSIGNAL:
// a peer that vanished mid-reply must give EPIPE, not kill the process with
// SIGPIPE.
#pragma once

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>

#include "vmm/common/unique_fd.h"

namespace ember::ttrpc {

// Throws common::Error if `fd` is not a connected SOCK_STREAM socket.
boost::asio::generic::stream_protocol::socket adopt_stream_socket(boost::asio::io_context& io,
                                                                  common::UniqueFd fd);

}  // namespace ember::ttrpc
