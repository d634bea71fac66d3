#include "vmm/vhost_user/memory_table.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

namespace ember::vmm::vhost_user {
namespace {

common::UniqueFd memfd(uint64_t size) {
  common::UniqueFd fd(::memfd_create("ember-memory-table-test", MFD_CLOEXEC));
  EXPECT_EQ(::ftruncate(fd.get(), static_cast<off_t>(size)), 0);
  return fd;
}

std::vector<common::UniqueFd> fds_of(common::UniqueFd fd) {
  std::vector<common::UniqueFd> out;
  out.push_back(std::move(fd));
  return out;
}

TEST(MemoryTable, MapsRegionsSharedAndTranslatesUserAddresses) {
  // QEMU's layout for microvm: RAM below 640 KiB and from 1 MiB, one memfd.
  common::UniqueFd fd = memfd(4 << 20);
  int dup = ::dup(fd.get());
  MemoryRegionDesc low{0, 0xa0000, 0x7f0000000000, 0};
  MemoryRegionDesc high{0x100000, (4 << 20) - 0x100000, 0x7f0000100000, 0x100000};
  std::vector<common::UniqueFd> fds;
  fds.push_back(std::move(fd));
  fds.emplace_back(dup);
  MemoryRegionDesc regions[] = {low, high};
  MemoryTable table = MemoryTable::map(regions, std::move(fds));

  EXPECT_EQ(table.region_count(), 2u);
  EXPECT_EQ(table.translate(0x7f0000000010, 16), GuestAddress(0x10));
  EXPECT_EQ(table.translate(0x7f0000200000, 4096), GuestAddress(0x200000));
  EXPECT_FALSE(table.translate(0x7f000009fff0, 32)) << "crosses the end of the low region";
  EXPECT_FALSE(table.translate(0x7f00000a0000, 1)) << "the hole between the regions";
  EXPECT_FALSE(table.translate(0x7e0000000000, 1));

  // The mapping is shared: what the backend writes, the frontend's memfd sees.
  table.memory().write_obj<uint32_t>(GuestAddress(0x200000), 0xfeedf00d);
  common::UniqueFd check(::dup(table.memory().regions()[1].fd.get()));
  uint32_t value = 0;
  ASSERT_EQ(::pread(check.get(), &value, 4, 0x200000), 4);
  EXPECT_EQ(value, 0xfeedf00du);
}

TEST(MemoryTable, RejectsWhatCouldFaultOrAlias) {
  auto expect_rejected = [](MemoryRegionDesc region, uint64_t file_size, const std::string& why) {
    MemoryRegionDesc regions[] = {region};
    try {
      MemoryTable::map(regions, fds_of(memfd(file_size)));
      ADD_FAILURE() << "accepted: " << why;
    } catch (const ProtocolError& e) {
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    }
  };
  expect_rejected({0, 0, 0x1000, 0}, 4096, "is empty");
  expect_rejected({UINT64_MAX - 10, 4096, 0x1000, 0}, 4096, "guest range wraps");
  expect_rejected({0, 4096, UINT64_MAX - 10, 0}, 4096, "user range wraps");
  expect_rejected({0, 4096, 0x1000, 100}, 8192, "not a multiple of the page size");
  expect_rejected({0, 8192, 0x1000, 0}, 4096, "is only 4096 bytes long");
  expect_rejected({0, 4096, 0x1000, 4096}, 4096, "is only 4096 bytes long");
}

TEST(MemoryTable, RejectsOverlappingUserRanges) {
  common::UniqueFd fd = memfd(8192);
  std::vector<common::UniqueFd> fds;
  fds.emplace_back(::dup(fd.get()));
  fds.push_back(std::move(fd));
  MemoryRegionDesc regions[] = {{0, 4096, 0x10000, 0}, {0x100000, 4096, 0x10800, 4096}};
  EXPECT_THROW(MemoryTable::map(regions, std::move(fds)), ProtocolError);
}

TEST(MemoryTable, KnowsWhetherTheFrontendCanShrinkTheMemory) {
  MemoryRegionDesc regions[] = {{0, 4096, 0x10000, 0}};
  EXPECT_FALSE(MemoryTable::map(regions, fds_of(memfd(4096))).sealed_against_shrinking());
  common::UniqueFd sealed(::memfd_create("ember-sealed", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  ASSERT_EQ(::ftruncate(sealed.get(), 4096), 0);
  ASSERT_EQ(::fcntl(sealed.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
  EXPECT_TRUE(MemoryTable::map(regions, fds_of(std::move(sealed))).sealed_against_shrinking());
}

TEST(MemoryTable, EmptyTableTranslatesNothing) {
  MemoryTable table = MemoryTable::map({}, {});
  EXPECT_EQ(table.region_count(), 0u);
  EXPECT_FALSE(table.translate(0, 1));
  EXPECT_EQ(table.describe(), "no regions");
}

}  // namespace
}  // namespace ember::vmm::vhost_user
