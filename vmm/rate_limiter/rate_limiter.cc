#include "vmm/rate_limiter/rate_limiter.h"

#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "vmm/common/error.h"

namespace ember::vmm {
namespace {
// Firecracker's REFILL_TIMER_DURATION.
constexpr uint64_t kRefillTimerNs = 100'000'000;
}  // namespace

uint64_t RateLimiter::monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000 + uint64_t(ts.tv_nsec);
}

RateLimiter::RateLimiter(const RateLimiterConfig& config, Clock clock)
    : clock_(std::move(clock)),
      timer_(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) {
  if (!timer_) common::throw_errno("create rate limiter timerfd");
  if (config.bandwidth) bandwidth_ = make_bucket(*config.bandwidth);
  if (config.ops) ops_ = make_bucket(*config.ops);
}

std::optional<TokenBucket> RateLimiter::make_bucket(const TokenBucketConfig& config) const {
  return TokenBucket::create(config.size, config.one_time_burst.value_or(0), config.refill_time_ms,
                             clock_());
}

void RateLimiter::arm_timer(uint64_t ns) {
  // A zero it_value would disarm the timer and leave us blocked forever.
  ns = std::max<uint64_t>(ns, 1);
  itimerspec spec{};
  spec.it_value.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
  spec.it_value.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  if (::timerfd_settime(timer_.get(), 0, &spec, nullptr) < 0)
    common::throw_errno("arm rate limiter timerfd");
  timer_active_ = true;
}

bool RateLimiter::consume(uint64_t tokens, TokenType type) {
  if (timer_active_) return false;
  std::optional<TokenBucket>& bucket = type == TokenType::kBytes ? bandwidth_ : ops_;
  if (!bucket) return true;
  double ratio = 0;
  switch (bucket->reduce(tokens, clock_(), &ratio)) {
    case TokenBucket::Reduction::kSuccess:
      return true;
    case TokenBucket::Reduction::kFailure:
      arm_timer(kRefillTimerNs);
      return false;
    case TokenBucket::Reduction::kOverConsumption: {
      // Block for as long as the overdraft takes to refill.
      double ns = ratio * static_cast<double>(bucket->refill_time_ms()) * 1e6;
      arm_timer(ns >= 1.8e19 ? UINT64_MAX / 2 : static_cast<uint64_t>(ns));
      return true;
    }
  }
  return true;
}

void RateLimiter::manual_replenish(uint64_t tokens, TokenType type) {
  std::optional<TokenBucket>& bucket = type == TokenType::kBytes ? bandwidth_ : ops_;
  if (bucket) bucket->force_replenish(tokens);
}

bool RateLimiter::event_handler() {
  uint64_t expirations = 0;
  ssize_t n = ::read(timer_.get(), &expirations, sizeof expirations);
  if (n != sizeof expirations || expirations == 0) return false;
  timer_active_ = false;
  return true;
}

void RateLimiter::update(const RateLimiterConfig& patch) {
  if (patch.bandwidth) bandwidth_ = make_bucket(*patch.bandwidth);
  if (patch.ops) ops_ = make_bucket(*patch.ops);
}

}  // namespace ember::vmm
