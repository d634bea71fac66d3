#include "vmm/rate_limiter/rate_limiter.h"

#include <gtest/gtest.h>
#include <poll.h>

namespace ember::vmm {
namespace {

constexpr uint64_t kMs = 1'000'000;

struct FakeClock {
  uint64_t now = 1'000 * kMs;
  RateLimiter::Clock clock() {
    return [this] { return now; };
  }
};

bool fd_readable_within(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1;
}

TEST(TokenBucketTest, ZeroSizeOrRefillTimeDisablesTheBucket) {
  EXPECT_FALSE(TokenBucket::create(0, 0, 100, 0));
  EXPECT_FALSE(TokenBucket::create(100, 0, 0, 0));
  EXPECT_FALSE(TokenBucket::create(100, 0, UINT64_MAX, 0)) << "refill time overflows nanoseconds";
  EXPECT_TRUE(TokenBucket::create(100, 0, 100, 0));
}

TEST(TokenBucketTest, StartsFullAndRefillsContinuously) {
  auto b = *TokenBucket::create(1000, 0, 1000, 0);
  EXPECT_EQ(b.budget(), 1000u);
  EXPECT_EQ(b.reduce(1000, 0), TokenBucket::Reduction::kSuccess);
  EXPECT_EQ(b.reduce(1, 0), TokenBucket::Reduction::kFailure);
  // Half the refill time gives half the bucket.
  EXPECT_EQ(b.reduce(500, 500 * kMs), TokenBucket::Reduction::kSuccess);
  EXPECT_EQ(b.reduce(1, 500 * kMs), TokenBucket::Reduction::kFailure);
  // A whole refill time (or more) fills it completely, never more.
  EXPECT_EQ(b.reduce(1000, 5000 * kMs), TokenBucket::Reduction::kSuccess);
  EXPECT_EQ(b.reduce(1, 5000 * kMs), TokenBucket::Reduction::kFailure);
}

TEST(TokenBucketTest, CarriesTheFractionOfATokenBetweenRefills) {
  // 3 tokens per 10 ms: one token every 3.33 ms. Asked every 2 ms for 32 ms,
  // the bucket must grant 9; dropping the remainders would grant 8 (one per 4 ms).
  auto b = *TokenBucket::create(3, 0, 10, 0);
  ASSERT_EQ(b.reduce(3, 0), TokenBucket::Reduction::kSuccess);
  int granted = 0;
  for (uint64_t t = 2; t <= 32; t += 2) {
    if (b.reduce(1, t * kMs) == TokenBucket::Reduction::kSuccess) ++granted;
  }
  EXPECT_EQ(granted, 9);
}

TEST(TokenBucketTest, OneTimeBurstIsSpentFirstAndNeverRefills) {
  auto b = *TokenBucket::create(100, 50, 1000, 0);
  EXPECT_EQ(b.reduce(50, 0), TokenBucket::Reduction::kSuccess);
  EXPECT_EQ(b.one_time_burst(), 0u);
  EXPECT_EQ(b.budget(), 100u) << "the regular budget is untouched by the burst";
  EXPECT_EQ(b.reduce(100, 0), TokenBucket::Reduction::kSuccess);
  EXPECT_EQ(b.reduce(1, 0), TokenBucket::Reduction::kFailure);
  EXPECT_EQ(b.reduce(100, 10'000 * kMs), TokenBucket::Reduction::kSuccess);
  EXPECT_EQ(b.one_time_burst(), 0u);
}

TEST(TokenBucketTest, ForceReplenishIsCappedAtSize) {
  auto b = *TokenBucket::create(100, 0, 1000, 0);
  ASSERT_EQ(b.reduce(60, 0), TokenBucket::Reduction::kSuccess);
  b.force_replenish(1000);
  EXPECT_EQ(b.budget(), 100u);
}

TEST(RateLimiterTest, DisabledBucketsLetEverythingThrough) {
  RateLimiter rl(RateLimiterConfig{TokenBucketConfig{0, std::nullopt, 100}, std::nullopt});
  EXPECT_FALSE(rl.enabled());
  EXPECT_TRUE(rl.consume(UINT64_MAX, RateLimiter::TokenType::kBytes));
  EXPECT_TRUE(rl.consume(UINT64_MAX, RateLimiter::TokenType::kOps));
  EXPECT_FALSE(rl.is_blocked());
}

TEST(RateLimiterTest, BlocksWhenShortAndUnblocksWhenTheTimerFires) {
  FakeClock clock;
  RateLimiter rl(RateLimiterConfig{std::nullopt, TokenBucketConfig{2, std::nullopt, 1000}},
                 clock.clock());
  EXPECT_TRUE(rl.consume(1, RateLimiter::TokenType::kOps));
  EXPECT_TRUE(rl.consume(1, RateLimiter::TokenType::kOps));
  EXPECT_FALSE(rl.consume(1, RateLimiter::TokenType::kOps));
  EXPECT_TRUE(rl.is_blocked());
  // Blocked means blocked, even for a bucket that has tokens.
  EXPECT_FALSE(rl.consume(1, RateLimiter::TokenType::kBytes));
  // The real timerfd fires after ~100 ms.
  EXPECT_FALSE(fd_readable_within(rl.fd(), 50));
  ASSERT_TRUE(fd_readable_within(rl.fd(), 1000));
  EXPECT_TRUE(rl.event_handler());
  EXPECT_FALSE(rl.is_blocked());
  EXPECT_FALSE(rl.event_handler()) << "nothing expired: spurious";
  clock.now += 500 * kMs;
  EXPECT_TRUE(rl.consume(1, RateLimiter::TokenType::kOps));
}

TEST(RateLimiterTest, OverConsumptionIsAllowedOnceThenBlocks) {
  FakeClock clock;
  // 1000 bytes per 100 ms; a 1500-byte request overdraws by half a bucket.
  RateLimiter rl(RateLimiterConfig{TokenBucketConfig{1000, std::nullopt, 100}, std::nullopt},
                 clock.clock());
  EXPECT_TRUE(rl.consume(1500, RateLimiter::TokenType::kBytes));
  EXPECT_TRUE(rl.is_blocked());
  EXPECT_FALSE(rl.consume(1, RateLimiter::TokenType::kBytes));
  ASSERT_TRUE(fd_readable_within(rl.fd(), 1000)) << "blocked for ~50 ms";
  EXPECT_TRUE(rl.event_handler());
}

TEST(RateLimiterTest, ManualReplenishRefundsTokens) {
  FakeClock clock;
  RateLimiter rl(RateLimiterConfig{std::nullopt, TokenBucketConfig{1, std::nullopt, 1000}},
                 clock.clock());
  EXPECT_TRUE(rl.consume(1, RateLimiter::TokenType::kOps));
  rl.manual_replenish(1, RateLimiter::TokenType::kOps);
  EXPECT_TRUE(rl.consume(1, RateLimiter::TokenType::kOps));
}

TEST(RateLimiterTest, UpdateFollowsPatchSemantics) {
  FakeClock clock;
  RateLimiter rl(
      RateLimiterConfig{TokenBucketConfig{100, std::nullopt, 1000}, TokenBucketConfig{10, 5, 1000}},
      clock.clock());
  // Omitted buckets stay as they are.
  rl.update(RateLimiterConfig{TokenBucketConfig{200, std::nullopt, 500}, std::nullopt});
  ASSERT_TRUE(rl.bandwidth());
  EXPECT_EQ(rl.bandwidth()->size(), 200u);
  EXPECT_EQ(rl.bandwidth()->refill_time_ms(), 500u);
  ASSERT_TRUE(rl.ops());
  EXPECT_EQ(rl.ops()->size(), 10u);
  EXPECT_EQ(rl.ops()->one_time_burst(), 5u);
  // Size or refill time 0 disables.
  rl.update(RateLimiterConfig{std::nullopt, TokenBucketConfig{0, std::nullopt, 1000}});
  EXPECT_FALSE(rl.ops());
  EXPECT_TRUE(rl.bandwidth());
  rl.update(RateLimiterConfig{TokenBucketConfig{200, std::nullopt, 0}, std::nullopt});
  EXPECT_FALSE(rl.enabled());
}

}  // namespace
}  // namespace ember::vmm
