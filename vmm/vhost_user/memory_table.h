// The frontend's memory table (SET_MEM_TABLE): every region's fd mapped
// MAP_SHARED into a GuestMemory, so the device code reaches the guest's RAM
// through the same bounds-checked accessor it uses inside ember-vmm, plus the
// translation of frontend virtual ("user") addresses, which is how vring
// addresses arrive (vhost-user.rst "Memory access").
//
// Everything in the table is untrusted: sizes, overlaps, offsets and the fds
// are checked before anything is mapped, and a region must be backed by a
// regular file (memfd, /dev/shm, hugetlbfs) at least as long as the region,
// so no access inside GuestMemory can fault with SIGBUS.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "vmm/common/unique_fd.h"
#include "vmm/vhost_user/protocol.h"
#include "vmm/vstate/guest_memory.h"

namespace ember::vmm::vhost_user {

class MemoryTable {
 public:
  MemoryTable() = default;
  MemoryTable(MemoryTable&&) = default;
  MemoryTable& operator=(MemoryTable&&) = default;

  // Validates `regions` and maps `fds` (one per region, in order). Throws
  // ProtocolError naming the region and the problem.
  static MemoryTable map(std::span<const MemoryRegionDesc> regions,
                         std::vector<common::UniqueFd> fds);

  // Guest memory; the address stays valid while this table lives, also
  // across moves of the table (a device holds a reference to it).
  const GuestMemory& memory() const { return *memory_; }
  size_t region_count() const { return ranges_.size(); }

  // The guest address of frontend address `user_address`, when the whole
  // range [user_address, user_address + len) lies inside one region.
  std::optional<GuestAddress> translate(uint64_t user_address, uint64_t len) const;

  // True when every region is a memfd sealed with F_SEAL_SHRINK, so the
  // frontend cannot truncate memory the backend has mapped.
  bool sealed_against_shrinking() const { return sealed_; }

  // "[guest 0x0 +256 MiB at user 0x7f...]" for log lines.
  std::string describe() const;

 private:
  struct UserRange {
    uint64_t user_address;
    uint64_t size;
    GuestAddress guest_address;
  };
  std::unique_ptr<GuestMemory> memory_ = std::make_unique<GuestMemory>();
  std::vector<UserRange> ranges_;
  bool sealed_ = true;
};

}  // namespace ember::vmm::vhost_user
