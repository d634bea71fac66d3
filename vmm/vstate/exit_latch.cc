#include "vmm/vstate/exit_latch.h"

namespace ember::vmm {

void ExitLatch::request(VmExit exit) {
  {
    std::lock_guard lock(mutex_);
    int64_t expected = 0;
    if (!state_.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) return;
    exit_ = std::move(exit);
  }
  event_.signal();
}

void ExitLatch::request_stop(int exit_code) {
  int64_t expected = 0;
  int64_t value = kStopFlag | static_cast<uint32_t>(exit_code);
  if (state_.compare_exchange_strong(expected, value, std::memory_order_acq_rel)) event_.signal();
}

std::optional<VmExit> ExitLatch::get() const {
  std::lock_guard lock(mutex_);
  int64_t state = state_.load(std::memory_order_acquire);
  if (state == 0) return std::nullopt;
  if (state == 1) return exit_;
  return VmExit{static_cast<int>(static_cast<int32_t>(state & 0xffffffff)), "stop requested"};
}

}  // namespace ember::vmm
