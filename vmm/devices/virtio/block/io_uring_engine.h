// The Async io engine of a virtio-blk drive (Firecracker's `io_engine:
// "Async"`): reads, writes and flushes go to an io_uring and complete on the
// device thread's epoll loop through an eventfd, so one slow request no
// longer holds up the queue behind it. The engine only moves bytes; which
// chain a completion belongs to is the caller's `tag`.
#pragma once

#include <liburing.h>
#include <sys/uio.h>

#include <cstdint>
#include <span>

#include "vmm/common/event_fd.h"

namespace ember::vmm::virtio {

class IoUringEngine {
 public:
  // A ring of `entries` submissions (a power of two) that signals
  // `completions` (an eventfd the caller owns and watches) when requests
  // complete. Throws common::Error naming the cause when the kernel refuses
  // io_uring (old kernel, seccomp, kernel.io_uring_disabled).
  IoUringEngine(unsigned entries, const common::EventFd& completions);
  ~IoUringEngine();
  IoUringEngine(const IoUringEngine&) = delete;
  IoUringEngine& operator=(const IoUringEngine&) = delete;

  // Queue one request; false when the submission queue is full (submit()
  // and try again). `iov` must stay valid until the completion is reaped.
  bool prepare_read(int fd, std::span<const iovec> iov, uint64_t offset, uint64_t tag);
  bool prepare_write(int fd, std::span<const iovec> iov, uint64_t offset, uint64_t tag);
  // fsync after every request queued before it has completed (DRAIN):
  // a FLUSH covers the writes the driver saw completed, and those in flight.
  bool prepare_flush(int fd, uint64_t tag);
  // Hands the queued requests to the kernel; returns 0 or -errno.
  int submit();

  // Calls done(tag, result) for each completion ready now (result: bytes
  // moved, or -errno); with `wait`, blocks for at least one first.
  template <class Done>
  size_t reap(Done done, bool wait = false);

 private:
  // Fills the next submission entry with `prep` and tags it; false when the
  // submission queue is full.
  template <class Prep>
  bool prepare(uint64_t tag, Prep prep);

  io_uring ring_{};
};

template <class Done>
size_t IoUringEngine::reap(Done done, bool wait) {
  size_t n = 0;
  io_uring_cqe* cqe = nullptr;
  if (wait) {
    int rc;
    do {
      rc = io_uring_wait_cqe(&ring_, &cqe);
    } while (rc == -EINTR);
    if (rc < 0) return 0;
  }
  while (io_uring_peek_cqe(&ring_, &cqe) == 0 && cqe) {
    uint64_t tag = io_uring_cqe_get_data64(cqe);
    int32_t result = cqe->res;
    io_uring_cqe_seen(&ring_, cqe);
    done(tag, result);
    ++n;
  }
  return n;
}

}  // namespace ember::vmm::virtio
