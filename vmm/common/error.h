// Error types shared by every ember component.
//
// Errors carry context: what was attempted, on what, and the system's reason,
// e.g. `open drive "rootfs" at /var/lib/x.img: No such file or directory`.
#pragma once

#include <stdexcept>
#include <string>

namespace ember::common {

// A failure with a complete, user-facing message.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A failed system call; keeps errno so callers can branch on it.
class SystemError : public Error {
 public:
  SystemError(int err, const std::string& what);
  int error_code() const { return errno_; }

 private:
  int errno_;
};

// strerror(3) text for `err`, thread-safe.
std::string errno_text(int err);

// Throws SystemError(errno, what): `<what>: <strerror(errno)>`.
[[noreturn]] void throw_errno(const std::string& what);

}  // namespace ember::common
