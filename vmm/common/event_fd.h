// eventfd(2) counter: used for queue kicks (ioeventfd), interrupts (irqfd),
// and waking event loops from other threads.
#pragma once

#include <cstdint>

#include "vmm/common/unique_fd.h"

namespace ember::common {

class EventFd {
 public:
  // Non-blocking, close-on-exec.
  explicit EventFd(unsigned initial = 0);
  // Adopts an eventfd received from elsewhere (e.g. a vhost-user frontend).
  explicit EventFd(UniqueFd fd) : fd_(std::move(fd)) {}

  int fd() const { return fd_.get(); }
  void signal(uint64_t n = 1) const;
  // Returns the accumulated count and resets it; 0 when nothing was signalled.
  uint64_t consume() const;

 private:
  UniqueFd fd_;
};

}  // namespace ember::common
