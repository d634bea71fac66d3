// libFuzzer target: arbitrary bytes from a peer into a live server
// connection (frame decoder, Request parsing, dispatch, error replies), and
// into a standalone FrameReader fed in uneven chunks.
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>

#include "proto/ttrpc/frame.h"
#include "proto/ttrpc/server.h"
#include "vmm/common/unique_fd.h"

namespace {

using namespace ember;

ttrpc::Server& fuzz_server_instance() {
  static ttrpc::Server server(ttrpc::ServerOptions{.max_handler_threads = 4});
  static bool registered = [] {
    server.register_method("fuzz.Svc", "Echo",
                           [](ttrpc::Context&, std::string_view p) { return std::string(p); });
    server.register_method("fuzz.Svc", "Fail",
                           [](ttrpc::Context&, std::string_view) -> std::string {
                             throw ttrpc::StatusError(ttrpc::Code::kNotFound, "nothing");
                           });
    return true;
  }();
  (void)registered;
  return server;
}

void fuzz_reader(const std::uint8_t* data, std::size_t size) {
  ttrpc::FrameReader reader;
  std::size_t chunk = 1;
  while (size > 0) {
    std::size_t n = std::min(chunk, size);
    reader.feed(std::span<const std::uint8_t>(data, n));
    while (auto frame = reader.next()) {
      if (!frame->oversize && frame->payload.size() != frame->header.length) __builtin_trap();
    }
    data += n;
    size -= n;
    chunk = chunk * 3 + 1;
  }
}

void fuzz_server(const std::uint8_t* data, std::size_t size) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return;
  common::UniqueFd ours(fds[0]);
  common::UniqueFd theirs(fds[1]);
  fuzz_server_instance().serve_connection(std::move(ours));
  // Write everything (draining replies so the server never blocks on us),
  // half-close, then read until the server closes the connection.
  std::size_t off = 0;
  char buf[65536];
  while (off < size) {
    ssize_t n = ::send(theirs.get(), data + off, size - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      off += static_cast<std::size_t>(n);
    } else if (::recv(theirs.get(), buf, sizeof(buf), MSG_DONTWAIT) == 0) {
      return;
    }
  }
  ::shutdown(theirs.get(), SHUT_WR);
  while (::read(theirs.get(), buf, sizeof(buf)) > 0) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz_reader(data, size);
  fuzz_server(data, size);
  return 0;
}
