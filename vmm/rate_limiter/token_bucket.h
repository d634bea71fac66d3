// A token bucket with Firecracker's semantics (reference/firecracker-compat.md
// §4): starts full, refills continuously at size tokens per refill_time (the
// fraction of a token earned between two calls is carried, not lost), an
// optional one-time burst that is spent first and never refills, and a
// request bigger than the whole bucket is let through once
// ("overconsumption") by emptying it.
#pragma once

#include <cstdint>
#include <optional>

namespace ember::vmm {

class TokenBucket {
 public:
  enum class Reduction {
    kFailure,          // not enough tokens now; nothing was taken
    kSuccess,          // tokens taken
    kOverConsumption,  // more than the bucket holds: allowed, bucket emptied
  };

  // std::nullopt when size or refill_time_ms is 0 (the bucket is disabled) or
  // the refill time does not fit in 64-bit nanoseconds.
  static std::optional<TokenBucket> create(uint64_t size, uint64_t one_time_burst,
                                           uint64_t refill_time_ms, uint64_t now_ns);

  // Takes `tokens`. On kOverConsumption, `*overdraft_ratio` says how many
  // whole buckets the request went over (what the caller must wait for).
  Reduction reduce(uint64_t tokens, uint64_t now_ns, double* overdraft_ratio = nullptr);
  // Gives tokens back (a request that was let through one bucket but not the other).
  void force_replenish(uint64_t tokens);

  uint64_t size() const { return size_; }
  uint64_t refill_time_ms() const { return refill_time_ms_; }
  uint64_t one_time_burst() const { return one_time_burst_; }
  uint64_t initial_one_time_burst() const { return initial_one_time_burst_; }
  uint64_t budget() const { return budget_; }

 private:
  TokenBucket() = default;
  void refill(uint64_t now_ns);

  uint64_t size_ = 0;
  uint64_t initial_one_time_burst_ = 0;
  uint64_t refill_time_ms_ = 0;
  uint64_t one_time_burst_ = 0;
  uint64_t budget_ = 0;
  uint64_t last_update_ns_ = 0;
  // size / refill_time_ns reduced by their gcd, so the refill arithmetic is
  // exact and small.
  uint64_t capacity_unit_ = 0;
  uint64_t refill_unit_ns_ = 0;
};

}  // namespace ember::vmm
