// Records why the VM must stop (the first reason wins) and wakes the VMM's
// device thread through an eventfd. vCPU threads, devices (i8042 reset) and
// Vmm::stop() all end a VM through here.
#pragma once

#include <atomic>
#include <mutex>
#include <optional>

#include "vmm/common/event_fd.h"
#include "vmm/vmm.h"

namespace ember::vmm {

class ExitLatch {
 public:
  // Thread-safe. Ignored if a reason was already recorded.
  void request(VmExit exit);
  // Async-signal-safe (atomics and write(2) only): a stop request with
  // `exit_code`, reported as "stop requested".
  void request_stop(int exit_code);

  bool requested() const { return state_.load(std::memory_order_acquire) != 0; }
  // The recorded reason, once requested() is true.
  std::optional<VmExit> get() const;
  int fd() const { return event_.fd(); }
  void consume_event() const { event_.consume(); }
  // How many times the event was signalled since the last call (tests).
  uint64_t consume_event_count() const { return event_.consume(); }

 private:
  // 0: nothing yet; 1: exit_ holds the reason; kStopFlag | code: a stop request.
  static constexpr int64_t kStopFlag = 0x100000000LL;
  std::atomic<int64_t> state_{0};
  mutable std::mutex mutex_;
  VmExit exit_;
  common::EventFd event_;
};

}  // namespace ember::vmm
