#include "vmm/vstate/guest_memory.h"

#include <gtest/gtest.h>

namespace ember::vmm {
namespace {

GuestMemory two_regions() {
  // A hole between 0x3000 and 0x10000, as around the 32-bit MMIO gap.
  return GuestMemory::anonymous({{GuestAddress(0), 0x3000}, {GuestAddress(0x10000), 0x2000}});
}

TEST(GuestMemory, ReadsBackWhatWasWritten) {
  auto mem = two_regions();
  mem.write_obj<uint64_t>(GuestAddress(0x1008), 0x1122334455667788ull);
  EXPECT_EQ(mem.read_obj<uint64_t>(GuestAddress(0x1008)), 0x1122334455667788ull);
  EXPECT_EQ(mem.read_obj<uint8_t>(GuestAddress(0x1008)), 0x88);
}

TEST(GuestMemory, RejectsRangesOutsideRam) {
  auto mem = two_regions();
  EXPECT_THROW(mem.read_obj<uint32_t>(GuestAddress(0x2ffe)), GuestMemoryError);  // straddles the hole
  EXPECT_THROW(mem.slice(GuestAddress(0x5000), 1), GuestMemoryError);          // inside the hole
  EXPECT_THROW(mem.slice(GuestAddress(0x11fff), 2), GuestMemoryError);         // past the end
  EXPECT_THROW(mem.slice(GuestAddress(UINT64_MAX - 1), 4), GuestMemoryError);  // wraps
  EXPECT_FALSE(mem.contains(GuestAddress(0x10000), UINT64_MAX));
  EXPECT_TRUE(mem.contains(GuestAddress(0x10000), 0x2000));
}

TEST(GuestMemory, CopiesAcrossContiguousRegions) {
  GuestMemory mem;
  mem.add_region(GuestAddress(0), common::Mapping::anonymous(0x1000, "a"));
  mem.add_region(GuestAddress(0x1000), common::Mapping::anonymous(0x1000, "b"));
  std::vector<uint8_t> data(16, 0xab);
  mem.write(GuestAddress(0xff8), data);
  std::vector<uint8_t> back(16);
  mem.read(GuestAddress(0xff8), back);
  EXPECT_EQ(back, data);
  EXPECT_THROW(mem.slice(GuestAddress(0xff8), 16), GuestMemoryError);  // a slice stays in one region
}

TEST(GuestMemory, RejectsOverlappingRegions) {
  auto mem = two_regions();
  EXPECT_THROW(mem.add_region(GuestAddress(0x11000), common::Mapping::anonymous(0x1000, "x")), GuestMemoryError);
}

TEST(GuestMemory, AtomicRingIndexNeedsAlignment) {
  auto mem = two_regions();
  mem.store_release_u16(GuestAddress(0x10002), 7);
  EXPECT_EQ(mem.load_acquire_u16(GuestAddress(0x10002)), 7);
  EXPECT_THROW(mem.load_acquire_u16(GuestAddress(0x10003)), GuestMemoryError);
}

}  // namespace
}  // namespace ember::vmm
