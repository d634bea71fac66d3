#include "vmm/devices/bus.h"

#include <gtest/gtest.h>

#include <vector>

#include "vmm/common/error.h"

namespace ember::vmm {
namespace {

struct Recorder : BusDevice {
  std::vector<std::pair<uint64_t, size_t>> reads, writes;
  void read(uint64_t offset, std::span<uint8_t> data) override {
    reads.emplace_back(offset, data.size());
    for (auto& b : data) b = static_cast<uint8_t>(offset);
  }
  void write(uint64_t offset, std::span<const uint8_t> data) override { writes.emplace_back(offset, data.size()); }
};

TEST(Bus, DispatchesWithOffsetsRelativeToTheBase) {
  Bus bus;
  auto a = std::make_shared<Recorder>();
  auto b = std::make_shared<Recorder>();
  bus.insert(a, 0x3f8, 8);
  bus.insert(b, 0x60, 5);
  uint8_t byte = 0;
  EXPECT_TRUE(bus.read(0x3fd, std::span<uint8_t>(&byte, 1)));
  EXPECT_EQ(byte, 5);
  EXPECT_TRUE(bus.write(0x64, std::span<const uint8_t>(&byte, 1)));
  EXPECT_EQ(a->reads, (std::vector<std::pair<uint64_t, size_t>>{{5, 1}}));
  EXPECT_EQ(b->writes, (std::vector<std::pair<uint64_t, size_t>>{{4, 1}}));
}

TEST(Bus, MissesOutsideAndAcrossDevices) {
  Bus bus;
  auto a = std::make_shared<Recorder>();
  bus.insert(a, 0x1000, 0x100);
  uint32_t word = 0x12345678;
  EXPECT_FALSE(bus.read(0xfff, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&word), 1)));
  EXPECT_FALSE(bus.read(0x1100, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&word), 1)));
  EXPECT_FALSE(bus.read(0x10fe, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&word), 4))) << "straddles the end";
  EXPECT_EQ(word, 0x12345678u) << "a miss leaves the buffer alone";
  EXPECT_TRUE(bus.read(0x10fc, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&word), 4)));
  EXPECT_TRUE(a->writes.empty());
}

TEST(Bus, RejectsOverlapsAndEmptyRanges) {
  Bus bus;
  bus.insert(std::make_shared<Recorder>(), 0x1000, 0x1000);
  EXPECT_THROW(bus.insert(std::make_shared<Recorder>(), 0x1fff, 2), common::Error);
  EXPECT_THROW(bus.insert(std::make_shared<Recorder>(), 0x800, 0x801), common::Error);
  EXPECT_THROW(bus.insert(std::make_shared<Recorder>(), 0x3000, 0), common::Error);
  EXPECT_THROW(bus.insert(std::make_shared<Recorder>(), ~0ULL, 2), common::Error);
  EXPECT_NO_THROW(bus.insert(std::make_shared<Recorder>(), 0x2000, 0x1000)) << "adjacent is fine";
}

}  // namespace
}  // namespace ember::vmm
