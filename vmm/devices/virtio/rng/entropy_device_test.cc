#include "vmm/devices/virtio/rng/entropy_device.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>

#include "vmm/devices/virtio/testing/driver_queue.h"

namespace ember::vmm::virtio {
namespace {

using testing::Buffer;
using testing::DriverQueue;
using testing::GuestAllocator;
using testing::RecordingInterrupt;

constexpr uint64_t kMemSize = 4 << 20;
constexpr uint64_t kFeatures =
    (uint64_t(1) << kFeatureVersion1) | (uint64_t(1) << kFeatureEventIdx);

struct EntropyFixture : ::testing::Test {
  Logger logger;
  Metrics metrics;
  GuestMemory memory = GuestMemory::anonymous({{GuestAddress(0), kMemSize}});
  GuestAllocator allocator{GuestAddress(0x1000), kMemSize - 0x1000};
  DriverQueue driver{memory, allocator, 64};
  RecordingInterrupt interrupt;
  common::EventLoop loop;
  std::unique_ptr<EntropyDevice> device;

  void start(EntropyConfig config = {}) {
    device = std::make_unique<EntropyDevice>(config, logger, metrics);
    auto guard = device->lock();
    device->activate(ActivationContext{memory, {driver.state()}, kFeatures, interrupt, loop});
  }
  void kick() {
    auto guard = device->lock();
    device->process_queue(0);
  }
  Buffer out(uint32_t len) { return Buffer{allocator.alloc(len), len, true}; }
};

TEST_F(EntropyFixture, FillsWritableBuffersWithHostRandomness) {
  start();
  Buffer a = out(1000), b = out(3096);
  uint16_t head = driver.add_chain({a, b});
  Buffer c = out(4096);
  driver.add_chain({c});
  kick();
  auto used = driver.next_used();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->id, head);
  EXPECT_EQ(used->len, 4096u);
  auto first = testing::get_bytes(memory, a.addr, 1000);
  auto second = testing::get_bytes(memory, c.addr, 1000);
  EXPECT_NE(first, second);
  EXPECT_GT(std::count_if(first.begin(), first.end(), [](uint8_t v) { return v != 0; }), 900);
  auto tail = testing::get_bytes(memory, b.addr + 3000, 96);
  EXPECT_GT(std::count_if(tail.begin(), tail.end(), [](uint8_t v) { return v != 0; }), 80)
      << "the split part too";
  EXPECT_EQ(metrics.counter("entropy", "entropy_bytes").load(), 8192u);
  EXPECT_EQ(interrupt.used[0], 1);
}

TEST_F(EntropyFixture, HugeRequestIsServedPartially) {
  start();
  driver.add_chain({out(3 << 20)});
  kick();
  auto used = driver.next_used();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->len, kEntropyMaxRequest);
}

TEST_F(EntropyFixture, RequestWithoutWritableBufferIsCompletedEmpty) {
  start();
  driver.add_chain({Buffer{allocator.alloc(16), 16, false}});
  Buffer good = out(16);
  driver.add_chain({good});
  kick();
  auto used = driver.next_used();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->len, 0u);
  used = driver.next_used();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->len, 16u);
}

TEST_F(EntropyFixture, HostileChainsDoNotStopTheDevice) {
  start();
  GuestAddress buf = allocator.alloc(16);
  driver.write_descriptor(60, buf.raw(), 16, kDescFlagWrite | kDescFlagNext, 60);  // self loop
  driver.publish(60);
  driver.add_chain({Buffer{GuestAddress(kMemSize - 8), 16, true}});  // past the end of RAM
  driver.add_chain({out(32)});
  kick();
  std::vector<uint32_t> lens;
  while (auto used = driver.next_used()) lens.push_back(used->len);
  EXPECT_EQ(lens, (std::vector<uint32_t>{0, 0, 32}));
  EXPECT_FALSE(device->needs_reset());
}

TEST_F(EntropyFixture, RateLimiterDelaysRequests) {
  EntropyConfig config;
  config.rate_limiter = RateLimiterConfig{TokenBucketConfig{64, std::nullopt, 100}, std::nullopt};
  start(config);
  for (int i = 0; i < 3; ++i) driver.add_chain({out(64)});
  kick();
  int done = 0;
  while (driver.next_used()) ++done;
  EXPECT_EQ(done, 1);
  EXPECT_GE(metrics.counter("entropy", "entropy_rate_limiter_throttled").load(), 1u);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (done < 3 && std::chrono::steady_clock::now() < deadline) {
    loop.run_once(100);
    while (driver.next_used()) ++done;
  }
  EXPECT_EQ(done, 3);
}

}  // namespace
}  // namespace ember::vmm::virtio
