// Firecracker's rate limiter (reference/firecracker-compat.md §4): a bytes
// bucket and an ops bucket sharing one timerfd. When a request does not fit,
// the device stops processing its queue and the timer is armed for 100 ms;
// when the timerfd fires (the device registers fd() in its EventLoop and
// calls event_handler()), the device retries. A request larger than a whole
// bucket is allowed once and the timer is armed for as long as the overdraft
// takes to refill.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>

#include "vmm/common/unique_fd.h"
#include "vmm/rate_limiter/token_bucket.h"
#include "vmm/vmm_config/vmm_config.h"

namespace ember::vmm {

class RateLimiter {
 public:
  enum class TokenType { kBytes, kOps };
  // Monotonic nanoseconds; injectable so tests control refills.
  using Clock = std::function<uint64_t()>;
  static uint64_t monotonic_ns();

  // Omitted buckets and buckets with size or refill_time 0 are disabled.
  explicit RateLimiter(const RateLimiterConfig& config = {}, Clock clock = monotonic_ns);

  // Takes `tokens` from the bucket of `type` (always true when that bucket is
  // disabled). False while blocked, or when the bucket is short: then the
  // 100 ms refill timer is armed.
  bool consume(uint64_t tokens, TokenType type);
  // Returns tokens to a bucket (e.g. the op of a request whose bytes did not fit).
  void manual_replenish(uint64_t tokens, TokenType type);
  bool is_blocked() const { return timer_active_; }

  // The timerfd became readable: unblocks. Returns false for a spurious
  // wake-up (nothing expired).
  bool event_handler();

  // PATCH semantics: an omitted bucket is unchanged, size or refill_time 0
  // disables it, anything else replaces it (full, with its burst).
  void update(const RateLimiterConfig& patch);

  // The timerfd to watch for EPOLLIN.
  int fd() const { return timer_.get(); }
  bool enabled() const { return bandwidth_ || ops_; }
  const std::optional<TokenBucket>& bandwidth() const { return bandwidth_; }
  const std::optional<TokenBucket>& ops() const { return ops_; }

 private:
  void arm_timer(uint64_t ns);
  std::optional<TokenBucket> make_bucket(const TokenBucketConfig& config) const;

  Clock clock_;
  std::optional<TokenBucket> bandwidth_;
  std::optional<TokenBucket> ops_;
  common::UniqueFd timer_;
  bool timer_active_ = false;
};

}  // namespace ember::vmm
