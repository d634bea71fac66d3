#include "guest-agent/agent/memory_watch.h"

#include <gtest/gtest.h>

#include <chrono>

namespace ember::agent {
namespace {

using namespace std::chrono_literals;
using Change = MemoryThrashWatch::Change;

// A cgroup whose counters move by the given amounts every 5 s.
class Feed {
 public:
  explicit Feed(MemoryThrashWatch& watch) : watch_(watch) {
    s_.valid = true;
    s_.limit = 16 << 20;
    s_.usage = 16 << 20;
  }
  MemoryThrashWatch::Report step(uint64_t limit_hits, uint64_t refaults, uint64_t oom_kills = 0) {
    now_ += 5s;
    s_.limit_hits += limit_hits;
    s_.refaults += refaults;
    s_.oom_kills += oom_kills;
    return watch_.update(s_, now_);
  }
  MemorySample& sample() { return s_; }

 private:
  MemoryThrashWatch& watch_;
  MemorySample s_;
  std::chrono::steady_clock::time_point now_{};
};

// Figures measured in the guest (TCG) while `head -c 128m /dev/zero | tail`
// sat at a 16 MiB limit: ~40000 refaults and ~25000 limit hits per 5 s.
TEST(MemoryThrashWatch, ReportsAContainerStuckAtItsLimitOnceThenWhenItEnds) {
  MemoryThrashWatch watch;
  Feed feed(watch);
  EXPECT_EQ(feed.step(0, 0).change, Change::kNone) << "first sample: nothing to compare";
  EXPECT_EQ(feed.step(25000, 40000).change, Change::kNone) << "one interval is not enough";
  auto r = feed.step(25000, 40000);
  EXPECT_EQ(r.change, Change::kStarted);
  EXPECT_EQ(r.refaults, 40000u);
  EXPECT_EQ(r.limit_hits, 25000u);
  EXPECT_EQ(r.interval, 5000ms);
  EXPECT_EQ(r.duration, 10000ms);
  EXPECT_EQ(r.episode_refaults, 80000u);
  EXPECT_TRUE(watch.reported());
  for (int i = 0; i < 11; ++i) EXPECT_EQ(feed.step(25000, 40000).change, Change::kNone) << i;
  r = feed.step(25000, 40000);  // 60 s after the report: reminded
  EXPECT_EQ(r.change, Change::kContinues);
  EXPECT_EQ(r.duration, 70000ms);
  r = feed.step(0, 0);
  EXPECT_EQ(r.change, Change::kEnded);
  EXPECT_EQ(r.duration, 75000ms);
  EXPECT_EQ(r.episode_refaults, 14 * 40000u);
  EXPECT_FALSE(watch.reported());
  EXPECT_EQ(feed.step(0, 0).change, Change::kNone);
}

TEST(MemoryThrashWatch, AnOomKillOrNoRefaultsOrNoLimitHitIsNotThrashing) {
  MemoryThrashWatch watch;
  Feed feed(watch);
  feed.step(0, 0);
  // The kernel OOM-killed something: it is handling the situation.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(feed.step(25000, 40000, 1).change, Change::kNone);
  // At the limit, but the working set fits: nothing read back.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(feed.step(25000, 0).change, Change::kNone);
  // Refaults well below the limit (global memory pressure, not this limit).
  feed.sample().usage = 8 << 20;
  for (int i = 0; i < 5; ++i) EXPECT_EQ(feed.step(0, 40000).change, Change::kNone);
  // Without a limit nothing can be hit.
  feed.sample().limit = UINT64_MAX;
  feed.sample().usage = UINT64_MAX - 1;
  for (int i = 0; i < 5; ++i) EXPECT_EQ(feed.step(0, 40000).change, Change::kNone);
  feed.sample().limit = 16 << 20;
  feed.sample().usage = 16 << 20;
  // A trickle of refaults at the limit: below 256 pages/s.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(feed.step(100, 1000).change, Change::kNone);
  EXPECT_FALSE(watch.reported());
}

// cgroup v1 on recent kernels leaves memory.failcnt at 0: usage right below
// the limit has to do.
TEST(MemoryThrashWatch, UsageRightBelowTheLimitCountsWhenLimitHitsAreNotCounted) {
  MemoryThrashWatch watch;
  Feed feed(watch);
  feed.sample().usage = (16 << 20) - (512 << 10);
  feed.step(0, 0);
  EXPECT_EQ(feed.step(0, 40000).change, Change::kNone);
  EXPECT_EQ(feed.step(0, 40000).change, Change::kStarted);
  feed.sample().usage = 12 << 20;
  EXPECT_EQ(feed.step(0, 40000).change, Change::kEnded);
}

TEST(MemoryThrashWatch, AQuietIntervalRestartsTheCount) {
  MemoryThrashWatch watch;
  Feed feed(watch);
  feed.step(0, 0);
  EXPECT_EQ(feed.step(10, 5000).change, Change::kNone);
  EXPECT_EQ(feed.step(0, 0).change, Change::kNone) << "never reported: no kEnded";
  EXPECT_EQ(feed.step(10, 5000).change, Change::kNone);
  EXPECT_EQ(feed.step(10, 5000).change, Change::kStarted);
}

TEST(MemoryThrashWatch, UnreadableOrResetCountersAreIgnored) {
  MemoryThrashWatch watch;
  Feed feed(watch);
  feed.step(0, 0);
  MemorySample bad;
  EXPECT_EQ(watch.update(bad, std::chrono::steady_clock::time_point{} + 1h).change, Change::kNone);
  feed.step(10, 5000);
  feed.sample().refaults = 0;  // a new cgroup under the same name
  EXPECT_EQ(feed.step(10, 5000).change, Change::kNone);
  EXPECT_FALSE(watch.reported());
}

}  // namespace
}  // namespace ember::agent
