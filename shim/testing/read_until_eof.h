// Reads what a test's FIFO or stream socket delivers, up to EOF.
#pragma once

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace ember::shim::testing {

// Everything read from `fd` until EOF; when nothing arrives for `timeout_ms`,
// what came so far followed by "<timeout>", so a comparison shows both.
inline std::string read_until_eof(int fd, int timeout_ms) {
  std::string out;
  char buf[4096];
  while (true) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return out + "<timeout>";
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EAGAIN) continue;
    if (n <= 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

}  // namespace ember::shim::testing
