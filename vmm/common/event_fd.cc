#include "vmm/common/event_fd.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include "vmm/common/error.h"

namespace ember::common {

EventFd::EventFd(unsigned initial) : fd_(::eventfd(initial, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (!fd_) throw_errno("create eventfd");
}

void EventFd::signal(uint64_t n) const {
  // EAGAIN means the counter is saturated, which still wakes the reader.
  while (::write(fd_.get(), &n, sizeof n) < 0 && errno == EINTR) {
  }
}

uint64_t EventFd::consume() const {
  uint64_t n = 0;
  while (::read(fd_.get(), &n, sizeof n) < 0) {
    if (errno != EINTR) return 0;
  }
  return n;
}

}  // namespace ember::common
