#include "vmm/rate_limiter/token_bucket.h"

#include <algorithm>
#include <numeric>

namespace ember::vmm {

std::optional<TokenBucket> TokenBucket::create(uint64_t size, uint64_t one_time_burst,
                                               uint64_t refill_time_ms, uint64_t now_ns) {
  if (size == 0 || refill_time_ms == 0) return std::nullopt;
  if (refill_time_ms > UINT64_MAX / 1'000'000) return std::nullopt;
  uint64_t refill_ns = refill_time_ms * 1'000'000;
  uint64_t common = std::gcd(size, refill_ns);
  TokenBucket b;
  b.size_ = size;
  b.initial_one_time_burst_ = one_time_burst;
  b.one_time_burst_ = one_time_burst;
  b.refill_time_ms_ = refill_time_ms;
  b.budget_ = size;
  b.last_update_ns_ = now_ns;
  b.capacity_unit_ = size / common;
  b.refill_unit_ns_ = refill_ns / common;
  return b;
}

void TokenBucket::refill(uint64_t now_ns) {
  uint64_t elapsed = now_ns > last_update_ns_ ? now_ns - last_update_ns_ : 0;
  if (elapsed / 1'000'000 >= refill_time_ms_) {
    budget_ = size_;
    last_update_ns_ = now_ns;
    return;
  }
  using u128 = unsigned __int128;
  u128 tokens = u128(elapsed) * capacity_unit_ / refill_unit_ns_;
  if (tokens == 0) return;
  // Advance the clock only by the time those whole tokens took; the rest of
  // `elapsed` keeps counting towards the next token (remainder carry).
  u128 spent = (tokens * refill_unit_ns_ + capacity_unit_ - 1) / capacity_unit_;
  last_update_ns_ += static_cast<uint64_t>(spent);
  budget_ = static_cast<uint64_t>(std::min<u128>(u128(budget_) + tokens, size_));
}

TokenBucket::Reduction TokenBucket::reduce(uint64_t tokens, uint64_t now_ns,
                                           double* overdraft_ratio) {
  if (one_time_burst_ > 0) {
    if (one_time_burst_ >= tokens) {
      one_time_burst_ -= tokens;
      // Refill starts counting only once the burst is gone (the bucket is
      // still full while the burst lasts).
      last_update_ns_ = now_ns;
      return Reduction::kSuccess;
    }
    tokens -= one_time_burst_;
    one_time_burst_ = 0;
  }
  if (tokens > budget_) {
    refill(now_ns);
    if (tokens > size_) {
      uint64_t over = tokens - budget_;
      budget_ = 0;
      if (overdraft_ratio)
        *overdraft_ratio = static_cast<double>(over) / static_cast<double>(size_);
      return Reduction::kOverConsumption;
    }
    if (tokens > budget_) return Reduction::kFailure;
  }
  budget_ -= tokens;
  return Reduction::kSuccess;
}

void TokenBucket::force_replenish(uint64_t tokens) {
  if (one_time_burst_ > 0) {
    one_time_burst_ = std::min(one_time_burst_ + std::min(tokens, UINT64_MAX - one_time_burst_),
                               initial_one_time_burst_);
    return;
  }
  budget_ = std::min(budget_ + std::min(tokens, UINT64_MAX - budget_), size_);
}

}  // namespace ember::vmm
