#include "proto/ttrpc/handler_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace ember::ttrpc {
namespace {

using namespace std::chrono_literals;

TEST(HandlerPool, EveryBlockedTaskGetsItsOwnThread) {
  HandlerPool pool(64, 10s, "test-pool");
  std::mutex mu;
  std::condition_variable cv;
  int started = 0;
  bool release = false;
  constexpr int kTasks = 20;
  for (int i = 0; i < kTasks; ++i) {
    pool.submit([&] {
      std::unique_lock lock(mu);
      ++started;
      cv.notify_all();
      cv.wait(lock, [&] { return release; });
    });
  }
  {
    std::unique_lock lock(mu);
    EXPECT_TRUE(cv.wait_for(lock, 5s, [&] { return started == kTasks; }))
        << "only " << started << " of " << kTasks << " blocking tasks got a thread";
    release = true;
    cv.notify_all();
  }
  EXPECT_TRUE(pool.wait_idle_until(std::chrono::steady_clock::now() + 5s));
  EXPECT_EQ(pool.thread_count(), static_cast<std::size_t>(kTasks));
}

TEST(HandlerPool, IdleThreadsRetire) {
  HandlerPool pool(8, 50ms, "test-pool");
  std::atomic<int> ran{0};
  for (int i = 0; i < 4; ++i) pool.submit([&] { ++ran; });
  EXPECT_TRUE(pool.wait_idle_until(std::chrono::steady_clock::now() + 5s));
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (pool.thread_count() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(pool.thread_count(), 0u);
  EXPECT_EQ(ran.load(), 4);
  pool.submit([&] { ++ran; });  // reaps the retired threads, starts a new one
  EXPECT_TRUE(pool.wait_idle_until(std::chrono::steady_clock::now() + 5s));
  EXPECT_EQ(ran.load(), 5);
}

TEST(HandlerPool, CapQueuesExtraTasksInsteadOfDroppingThem) {
  HandlerPool pool(2, 10s, "test-pool");
  std::atomic<int> ran{0};
  for (int i = 0; i < 50; ++i) {
    pool.submit([&] {
      std::this_thread::sleep_for(1ms);
      ++ran;
    });
  }
  EXPECT_TRUE(pool.wait_idle_until(std::chrono::steady_clock::now() + 10s));
  EXPECT_EQ(ran.load(), 50);
  EXPECT_LE(pool.thread_count(), 2u);
}

TEST(HandlerPool, JoinRunsQueuedTasksAndKnowsItsThreads) {
  std::atomic<int> ran{0};
  std::atomic<bool> on_pool{false};
  HandlerPool pool(1, 10s, "test-pool");
  pool.submit([&] {
    std::this_thread::sleep_for(20ms);
    on_pool = pool.on_pool_thread();
    ++ran;
  });
  pool.submit([&] { ++ran; });
  EXPECT_FALSE(pool.on_pool_thread());
  pool.join();
  EXPECT_EQ(ran.load(), 2);
  EXPECT_TRUE(on_pool.load());
  pool.submit([&] { ++ran; });  // dropped after join
  EXPECT_EQ(ran.load(), 2);
}

}  // namespace
}  // namespace ember::ttrpc
