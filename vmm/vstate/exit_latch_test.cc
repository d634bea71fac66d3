#include "vmm/vstate/exit_latch.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace ember::vmm {
namespace {

TEST(ExitLatch, FirstReasonWins) {
  ExitLatch latch;
  EXPECT_FALSE(latch.requested());
  EXPECT_FALSE(latch.get());
  latch.request({1, "vcpu 0: KVM_EXIT_SHUTDOWN (triple fault)"});
  latch.request({0, "guest reset through i8042"});
  latch.request_stop(0);
  ASSERT_TRUE(latch.get());
  EXPECT_EQ(latch.get()->exit_code, 1);
  EXPECT_EQ(latch.get()->reason, "vcpu 0: KVM_EXIT_SHUTDOWN (triple fault)");
  EXPECT_EQ(latch.consume_event_count(), 1u);
}

TEST(ExitLatch, StopCarriesItsCode) {
  ExitLatch latch;
  latch.request_stop(7);
  latch.request({0, "later"});
  ASSERT_TRUE(latch.requested());
  EXPECT_EQ(latch.get()->exit_code, 7);
  EXPECT_EQ(latch.get()->reason, "stop requested");
}

TEST(ExitLatch, ConcurrentRequestsRecordExactlyOne) {
  ExitLatch latch;
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&latch, i] {
      if (i % 2) {
        latch.request_stop(i);
      } else {
        latch.request({i, "thread " + std::to_string(i)});
      }
    });
  }
  for (auto& t : threads) t.join();
  auto exit = latch.get();
  ASSERT_TRUE(exit);
  EXPECT_EQ(latch.consume_event_count(), 1u);
  if (exit->reason == "stop requested") {
    EXPECT_EQ(exit->exit_code % 2, 1);
  } else {
    EXPECT_EQ(exit->reason, "thread " + std::to_string(exit->exit_code));
  }
}

}  // namespace
}  // namespace ember::vmm
