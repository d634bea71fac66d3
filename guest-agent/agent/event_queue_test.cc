#include "guest-agent/agent/event_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace ember::agent {
namespace {

using namespace std::chrono_literals;

AgentEvent oom(const std::string& id) {
  AgentEvent e;
  e.kind = AgentEvent::Kind::kOom;
  e.container_id = id;
  return e;
}

TEST(EventQueue, SequencesAreIncreasingAndResumable) {
  EventQueue q;
  uint64_t a = q.push(oom("a"));
  uint64_t b = q.push(oom("b"));
  EXPECT_LT(a, b);
  auto first = q.wait_next(0, std::chrono::steady_clock::now(), nullptr);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->container_id, "a");
  auto second = q.wait_next(first->sequence, std::chrono::steady_clock::now(), nullptr);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->container_id, "b");
  EXPECT_FALSE(q.wait_next(second->sequence, std::chrono::steady_clock::now() + 10ms, nullptr));
}

TEST(EventQueue, WaiterWakesForANewEvent) {
  EventQueue q;
  std::thread pusher([&] {
    std::this_thread::sleep_for(20ms);
    q.push(oom("late"));
  });
  auto e = q.wait_next(0, std::chrono::steady_clock::now() + 5s, nullptr);
  pusher.join();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->container_id, "late");
}

TEST(EventQueue, CancelledWaiterReturnsEmpty) {
  EventQueue q;
  std::atomic<bool> cancelled{false};
  std::thread canceller([&] {
    std::this_thread::sleep_for(20ms);
    cancelled = true;
    q.wake_all();
  });
  auto e = q.wait_next(0, std::nullopt, [&] { return cancelled.load(); });
  canceller.join();
  EXPECT_FALSE(e);
}

TEST(EventQueue, BoundedQueueDropsTheOldest) {
  EventQueue q(3);
  for (int i = 0; i < 5; ++i) q.push(oom(std::to_string(i)));
  EXPECT_EQ(q.oldest_sequence(), 3u);
  EXPECT_EQ(q.last_sequence(), 5u);
  auto e = q.wait_next(0, std::chrono::steady_clock::now(), nullptr);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->container_id, "2");
}

}  // namespace
}  // namespace ember::agent
