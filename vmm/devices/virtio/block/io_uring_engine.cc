#include "vmm/devices/virtio/block/io_uring_engine.h"

#include "vmm/common/error.h"

namespace ember::vmm::virtio {

IoUringEngine::IoUringEngine(unsigned entries, const common::EventFd& completions) {
  int rc = io_uring_queue_init(entries, &ring_, 0);
  if (rc < 0) throw common::Error("io_uring_queue_init: " + common::errno_text(-rc));
  rc = io_uring_register_eventfd(&ring_, completions.fd());
  if (rc < 0) {
    io_uring_queue_exit(&ring_);
    throw common::Error("io_uring_register_eventfd: " + common::errno_text(-rc));
  }
}

IoUringEngine::~IoUringEngine() { io_uring_queue_exit(&ring_); }

template <class Prep>
bool IoUringEngine::prepare(uint64_t tag, Prep prep) {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (!sqe) return false;
  prep(sqe);
  io_uring_sqe_set_data64(sqe, tag);  // after prep: the prep_* helpers reset fields
  return true;
}

bool IoUringEngine::prepare_read(int fd, std::span<const iovec> iov, uint64_t offset, uint64_t tag) {
  return prepare(tag, [&](io_uring_sqe* sqe) {
    io_uring_prep_readv(sqe, fd, iov.data(), static_cast<unsigned>(iov.size()), offset);
  });
}

bool IoUringEngine::prepare_write(int fd, std::span<const iovec> iov, uint64_t offset, uint64_t tag) {
  return prepare(tag, [&](io_uring_sqe* sqe) {
    io_uring_prep_writev(sqe, fd, iov.data(), static_cast<unsigned>(iov.size()), offset);
  });
}

bool IoUringEngine::prepare_flush(int fd, uint64_t tag) {
  return prepare(tag, [&](io_uring_sqe* sqe) {
    io_uring_prep_fsync(sqe, fd, 0);
    io_uring_sqe_set_flags(sqe, IOSQE_IO_DRAIN);
  });
}

int IoUringEngine::submit() {
  int rc;
  do {
    rc = io_uring_submit(&ring_);
  } while (rc == -EINTR);
  return rc < 0 ? rc : 0;
}

}  // namespace ember::vmm::virtio
