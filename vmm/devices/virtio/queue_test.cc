#include "vmm/devices/virtio/queue.h"

#include <gtest/gtest.h>

#include <numeric>

#include "vmm/devices/virtio/testing/driver_queue.h"

namespace ember::vmm::virtio {
namespace {

using testing::Buffer;
using testing::DriverQueue;
using testing::GuestAllocator;

constexpr uint64_t kMemSize = 1 << 20;
constexpr uint64_t kFeatures =
    (uint64_t(1) << kFeatureVersion1) | (uint64_t(1) << kFeatureIndirectDesc);

struct QueueFixture : ::testing::Test {
  GuestMemory memory = GuestMemory::anonymous({{GuestAddress(0), kMemSize}});
  GuestAllocator allocator{GuestAddress(0x1000), kMemSize - 0x1000};
  DriverQueue driver{memory, allocator, 16};
  std::vector<std::pair<std::string, bool>> errors;

  Queue make_queue(uint64_t features = kFeatures) {
    Queue q(memory, driver.state(), features, "test queue");
    q.set_error_handler(
        [this](const std::string& m, bool fatal) { errors.emplace_back(m, fatal); });
    return q;
  }
  Buffer readable(uint32_t len) { return Buffer{allocator.alloc(len), len, false}; }
  Buffer writable(uint32_t len) { return Buffer{allocator.alloc(len), len, true}; }
};

TEST_F(QueueFixture, PopsChainsInTheOrderTheDriverMadeThemAvailable) {
  Queue q = make_queue();
  uint16_t a = driver.add_chain({readable(16), readable(512), writable(1)});
  uint16_t b = driver.add_chain({writable(4096)});
  auto first = q.pop();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->head(), a);
  EXPECT_EQ(first->readable().size(), 2u);
  EXPECT_EQ(first->writable().size(), 1u);
  EXPECT_EQ(first->readable_len(), 528u);
  EXPECT_EQ(first->writable_len(), 1u);
  auto second = q.pop();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->head(), b);
  EXPECT_EQ(second->readable_len(), 0u);
  EXPECT_EQ(second->writable_len(), 4096u);
  EXPECT_FALSE(q.pop());
  EXPECT_TRUE(errors.empty());
}

TEST_F(QueueFixture, AddUsedPublishesElementAndIndex) {
  Queue q = make_queue();
  uint16_t head = driver.add_chain({writable(64)});
  auto chain = q.pop();
  ASSERT_TRUE(chain);
  q.add_used(chain->head(), 64);
  auto used = driver.next_used();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->id, head);
  EXPECT_EQ(used->len, 64u);
  EXPECT_EQ(driver.used_idx(), 1);
}

TEST_F(QueueFixture, FollowsIndirectTableWhenNegotiated) {
  Queue q = make_queue();
  driver.add_chain({readable(16), writable(100), writable(1)}, /*indirect=*/true);
  auto chain = q.pop();
  ASSERT_TRUE(chain);
  EXPECT_EQ(chain->descriptor_count(), 3u);
  EXPECT_EQ(chain->readable_len(), 16u);
  EXPECT_EQ(chain->writable_len(), 101u);
}

TEST_F(QueueFixture, RejectsIndirectTableWithoutTheFeature) {
  Queue q = make_queue(uint64_t(1) << kFeatureVersion1);
  uint16_t head = driver.add_chain({readable(16)}, /*indirect=*/true);
  EXPECT_FALSE(q.pop());
  auto used = driver.next_used();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->id, head);
  EXPECT_EQ(used->len, 0u);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_FALSE(errors[0].second);
  EXPECT_FALSE(q.broken());
}

// Each hostile chain is completed with length 0 and the next good one is served.
void expect_skipped_then_served(QueueFixture& f, Queue& q, uint16_t bad_head,
                                const std::string& reason_part) {
  uint16_t good = f.driver.add_chain({f.writable(8)});
  auto chain = q.pop();
  ASSERT_TRUE(chain) << "a good chain after a bad one must still be served";
  EXPECT_EQ(chain->head(), good);
  auto used = f.driver.next_used();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->id, bad_head);
  EXPECT_EQ(used->len, 0u);
  ASSERT_EQ(f.errors.size(), 1u);
  EXPECT_FALSE(f.errors[0].second);
  EXPECT_NE(f.errors[0].first.find(reason_part), std::string::npos) << f.errors[0].first;
  EXPECT_EQ(q.skipped_chains(), 1u);
  EXPECT_FALSE(q.broken());
}

TEST_F(QueueFixture, LoopInDescriptorTableIsRejected) {
  Queue q = make_queue();
  GuestAddress buf = allocator.alloc(8);
  driver.write_descriptor(0, buf.raw(), 8, kDescFlagNext, 1);
  driver.write_descriptor(1, buf.raw(), 8, kDescFlagNext, 0);
  driver.publish(0);
  auto chain = q.pop();
  EXPECT_FALSE(chain);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].first.find("loop"), std::string::npos) << errors[0].first;
  auto used = driver.next_used();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->id, 0u);
  EXPECT_EQ(used->len, 0u);
}

TEST_F(QueueFixture, BufferOutsideGuestRamIsRejected) {
  Queue q = make_queue();
  uint16_t head = driver.add_chain({Buffer{GuestAddress(kMemSize - 4), 8, true}});
  expect_skipped_then_served(*this, q, head, "outside guest RAM");
}

TEST_F(QueueFixture, AbsurdLengthIsRejected) {
  Queue q = make_queue();
  uint16_t head = driver.add_chain({Buffer{GuestAddress(0x1000), 0xffffffff, false}});
  expect_skipped_then_served(*this, q, head, "outside guest RAM");
}

TEST_F(QueueFixture, AddressOverflowIsRejected) {
  Queue q = make_queue();
  uint16_t head = driver.add_chain({Buffer{GuestAddress(UINT64_MAX - 2), 16, false}});
  expect_skipped_then_served(*this, q, head, "outside guest RAM");
}

TEST_F(QueueFixture, ReadableAfterWritableIsRejected) {
  Queue q = make_queue();
  uint16_t head = driver.add_chain({writable(8), readable(8)});
  expect_skipped_then_served(*this, q, head, "readable buffer after");
}

TEST_F(QueueFixture, NextIndexBeyondTableIsRejected) {
  Queue q = make_queue();
  GuestAddress buf = allocator.alloc(8);
  driver.write_descriptor(5, buf.raw(), 8, kDescFlagNext, 200);
  driver.publish(5);
  EXPECT_FALSE(q.pop());
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].first.find("beyond the queue size"), std::string::npos);
}

TEST_F(QueueFixture, IndirectInsideIndirectIsRejected) {
  Queue q = make_queue();
  GuestAddress inner = allocator.alloc(16);
  driver.write_descriptor_at(inner, 0, allocator.alloc(8).raw(), 8, 0, 0);
  GuestAddress outer = allocator.alloc(32);
  driver.write_descriptor_at(outer, 0, allocator.alloc(8).raw(), 8, kDescFlagNext, 1);
  driver.write_descriptor_at(outer, 1, inner.raw(), 16, kDescFlagIndirect, 0);
  driver.write_descriptor(7, outer.raw(), 32, kDescFlagIndirect, 0);
  driver.publish(7);
  EXPECT_FALSE(q.pop());
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].first.find("inside an indirect table"), std::string::npos);
}

TEST_F(QueueFixture, LoopInsideIndirectTableIsRejected) {
  Queue q = make_queue();
  GuestAddress table = allocator.alloc(32);
  GuestAddress buf = allocator.alloc(8);
  driver.write_descriptor_at(table, 0, buf.raw(), 8, kDescFlagNext, 1);
  driver.write_descriptor_at(table, 1, buf.raw(), 8, kDescFlagNext, 0);
  driver.write_descriptor(3, table.raw(), 32, kDescFlagIndirect, 0);
  driver.publish(3);
  EXPECT_FALSE(q.pop());
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].first.find("loops"), std::string::npos);
}

TEST_F(QueueFixture, IndirectTableWithBadLengthIsRejected) {
  Queue q = make_queue();
  for (uint32_t len : {0u, 15u, 24u, 16u * (kMaxIndirectDescriptors + 1)}) {
    errors.clear();
    driver.write_descriptor(4, 0x2000, len, kDescFlagIndirect, 0);
    driver.publish(4);
    EXPECT_FALSE(q.pop()) << len;
    ASSERT_EQ(errors.size(), 1u) << len;
    EXPECT_NE(errors[0].first.find("indirect table length"), std::string::npos) << errors[0].first;
  }
}

TEST_F(QueueFixture, IndirectWithNextFlagIsRejected) {
  Queue q = make_queue();
  GuestAddress table = allocator.alloc(16);
  driver.write_descriptor_at(table, 0, allocator.alloc(8).raw(), 8, 0, 0);
  driver.write_descriptor(3, table.raw(), 16, kDescFlagIndirect | kDescFlagNext, 4);
  driver.publish(3);
  EXPECT_FALSE(q.pop());
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].first.find("NEXT"), std::string::npos);
}

TEST_F(QueueFixture, ZeroLengthBuffersAreAccepted) {
  Queue q = make_queue();
  driver.add_chain({Buffer{GuestAddress(0x1000), 0, false}, writable(4)});
  auto chain = q.pop();
  ASSERT_TRUE(chain);
  EXPECT_EQ(chain->readable_len(), 0u);
  EXPECT_EQ(chain->writable_len(), 4u);
}

TEST_F(QueueFixture, ChainLongerThanFourGibIsRejected) {
  // Three 2 GiB buffers over the same (demand-paged, never touched) memory.
  GuestMemory big = GuestMemory::anonymous({{GuestAddress(0), (uint64_t(2) << 30) + kMemSize}});
  GuestAllocator alloc(GuestAddress(uint64_t(2) << 30), kMemSize);
  DriverQueue d(big, alloc, 8);
  Queue q(big, d.state(), kFeatures);
  std::string error;
  q.set_error_handler([&](const std::string& m, bool) { error = m; });
  d.add_chain({Buffer{GuestAddress(0), 0x80000000u, false},
               Buffer{GuestAddress(0), 0x80000000u, false},
               Buffer{GuestAddress(0), 0x80000000u, false}});
  EXPECT_FALSE(q.pop());
  EXPECT_NE(error.find("4 GiB"), std::string::npos) << error;
}

TEST_F(QueueFixture, HeadIndexBeyondQueueSizeBreaksTheQueue) {
  Queue q = make_queue();
  driver.publish(16);
  EXPECT_FALSE(q.pop());
  EXPECT_TRUE(q.broken());
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_TRUE(errors[0].second);
  // A broken queue serves nothing more and writes nothing.
  driver.add_chain({writable(8)});
  EXPECT_FALSE(q.pop());
  EXPECT_EQ(driver.used_idx(), 0);
  EXPECT_EQ(errors.size(), 1u) << "reported once";
}

TEST_F(QueueFixture, AvailIndexJumpBeyondQueueSizeBreaksTheQueue) {
  Queue q = make_queue();
  driver.set_avail_idx(17);
  EXPECT_FALSE(q.pop());
  EXPECT_TRUE(q.broken());
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].first.find("ahead"), std::string::npos);
}

TEST_F(QueueFixture, RejectsBadLayouts) {
  QueueState good = driver.state();
  auto expect_rejected = [&](QueueState s, const char* what) {
    EXPECT_THROW(Queue(memory, s, kFeatures), QueueError) << what;
  };
  QueueState s = good;
  s.size = 12;
  expect_rejected(s, "size not a power of two");
  s = good;
  s.size = 32;
  expect_rejected(s, "size above max");
  s = good;
  s.size = 0;
  expect_rejected(s, "size 0");
  s = good;
  s.desc_table = GuestAddress(good.desc_table.raw() + 8);
  expect_rejected(s, "misaligned descriptor table");
  s = good;
  s.used_ring = GuestAddress(good.used_ring.raw() + 2);
  expect_rejected(s, "misaligned used ring");
  s = good;
  s.avail_ring = GuestAddress(kMemSize - 10);
  expect_rejected(s, "avail ring outside RAM");
  s = good;
  s.used_ring = GuestAddress(UINT64_MAX - 3);
  expect_rejected(s, "used ring wrapping");
  s = good;
  s.ready = false;
  expect_rejected(s, "not ready");
}

TEST_F(QueueFixture, InterruptSuppressedByNoInterruptFlag) {
  Queue q = make_queue();
  driver.add_chain({writable(8)});
  q.add_used(q.pop()->head(), 8);
  EXPECT_TRUE(q.needs_interrupt());
  EXPECT_FALSE(q.needs_interrupt()) << "nothing new since the last check";
  driver.set_avail_flags(kAvailFlagNoInterrupt);
  driver.add_chain({writable(8)});
  q.add_used(q.pop()->head(), 8);
  EXPECT_FALSE(q.needs_interrupt());
}

TEST_F(QueueFixture, EventIdxInterruptsOnlyWhenUsedEventIsCrossed) {
  Queue q = make_queue(kFeatures | (uint64_t(1) << kFeatureEventIdx));
  driver.set_used_event(2);  // driver wants an interrupt once used idx passes 2
  for (int i = 0; i < 2; ++i) {
    driver.add_chain({writable(8)});
    q.add_used(q.pop()->head(), 8);
  }
  EXPECT_FALSE(q.needs_interrupt()) << "used idx 2 has not passed used_event 2";
  driver.add_chain({writable(8)});
  q.add_used(q.pop()->head(), 8);
  EXPECT_TRUE(q.needs_interrupt()) << "used idx 3 crossed used_event 2";
}

TEST_F(QueueFixture, EnableNotificationsWritesAvailEventWithEventIdx) {
  Queue q = make_queue(kFeatures | (uint64_t(1) << kFeatureEventIdx));
  driver.add_chain({writable(8)});
  driver.add_chain({writable(8)});
  q.disable_notifications();
  ASSERT_TRUE(q.pop());
  ASSERT_TRUE(q.pop());
  EXPECT_FALSE(q.enable_notifications());
  EXPECT_EQ(driver.avail_event(), 2);
}

TEST_F(QueueFixture, NoNotifyFlagWhileProcessingWithoutEventIdx) {
  Queue q = make_queue();
  q.disable_notifications();
  EXPECT_EQ(driver.used_flags(), kUsedFlagNoNotify);
  driver.add_chain({writable(8)});
  EXPECT_TRUE(q.enable_notifications()) << "a buffer arrived while notifications were off";
  EXPECT_EQ(driver.used_flags(), 0);
}

TEST_F(QueueFixture, UndoPopReturnsTheChainToTheRing) {
  Queue q = make_queue();
  uint16_t head = driver.add_chain({writable(8)});
  ASSERT_TRUE(q.pop());
  q.undo_pop();
  auto again = q.pop();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->head(), head);
}

TEST_F(QueueFixture, StateRoundTripsThroughQueueState) {
  Queue q = make_queue();
  for (int i = 0; i < 3; ++i) driver.add_chain({writable(8)});
  q.add_used(q.pop()->head(), 1);
  ASSERT_TRUE(q.pop());  // popped, not yet used
  QueueState s = q.state();
  EXPECT_EQ(s.next_avail, 2);
  EXPECT_EQ(s.next_used, 1);
  // A vhost-user backend restarted with this state continues where we were.
  Queue resumed(memory, s, kFeatures);
  auto chain = resumed.pop();
  ASSERT_TRUE(chain);
  resumed.add_used(chain->head(), 2);
  EXPECT_EQ(driver.used_idx(), 2);
}

TEST_F(QueueFixture, WrapsAroundTheRingManyTimes) {
  Queue q = make_queue(kFeatures | (uint64_t(1) << kFeatureEventIdx));
  Buffer buffer = writable(8);
  for (int i = 0; i < 70000; ++i) {
    uint16_t head = driver.add_chain({buffer});
    auto chain = q.pop();
    ASSERT_TRUE(chain);
    ASSERT_EQ(chain->head(), head);
    q.add_used(head, 8);
    ASSERT_TRUE(driver.next_used());
  }
  EXPECT_FALSE(q.broken());
}

TEST(ChainCursorTest, ReadsAndWritesAcrossDescriptorsAndRegions) {
  // Two adjacent regions: a buffer straddling them must still work.
  GuestMemory memory;
  memory.add_region(GuestAddress(0), common::Mapping::anonymous(0x10000, "r0"));
  memory.add_region(GuestAddress(0x10000), common::Mapping::anonymous(0x10000, "r1"));
  std::vector<Descriptor> buffers{
      {GuestAddress(0xfff0), 32}, {GuestAddress(0x100), 0}, {GuestAddress(0x200), 8}};
  std::vector<uint8_t> data(40);
  std::iota(data.begin(), data.end(), 1);
  ChainCursor writer(memory, buffers);
  EXPECT_EQ(writer.remaining(), 40u);
  EXPECT_EQ(writer.write(data), 40u);
  EXPECT_EQ(writer.remaining(), 0u);
  EXPECT_EQ(writer.write(data), 0u) << "clamped at the end";

  ChainCursor reader(memory, buffers);
  EXPECT_EQ(reader.skip(4), 4u);
  std::vector<iovec> iov;
  EXPECT_EQ(reader.iovecs(100, iov), 36u);
  ASSERT_EQ(iov.size(), 3u) << "split at the region boundary and the descriptor boundary";
  EXPECT_EQ(iov[0].iov_len, 12u);
  EXPECT_EQ(iov[1].iov_len, 16u);
  EXPECT_EQ(iov[2].iov_len, 8u);
  std::vector<uint8_t> back(36);
  EXPECT_EQ(reader.read(back), 36u);
  EXPECT_EQ(back, std::vector<uint8_t>(data.begin() + 4, data.end()));
}

}  // namespace
}  // namespace ember::vmm::virtio
