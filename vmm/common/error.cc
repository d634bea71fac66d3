#include "vmm/common/error.h"

#include <cerrno>
#include <cstring>

namespace ember::common {

std::string errno_text(int err) {
  char buf[256];
  // GNU strerror_r returns a pointer that may or may not be `buf`.
  return strerror_r(err, buf, sizeof buf);
}

SystemError::SystemError(int err, const std::string& what)
    : Error(what + ": " + errno_text(err)), errno_(err) {}

void throw_errno(const std::string& what) { throw SystemError(errno, what); }

}  // namespace ember::common
