// Where guest RAM goes and how the guest is told about it (e820 / PVH memmap).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "vmm/vstate/guest_memory.h"

namespace ember::vmm::arch {

// e820 entry types (ACPI 6.5 §15, "Address Range Types").
inline constexpr uint32_t kE820Ram = 1;
inline constexpr uint32_t kE820Reserved = 2;

struct E820Entry {
  uint64_t addr = 0;
  uint64_t size = 0;
  uint32_t type = 0;
  bool operator==(const E820Entry&) const = default;
};

// Guest RAM ranges for `mem_size` bytes: [0, min(size, 3 GiB)), then from
// 4 GiB up to the 64-bit MMIO hole at 256 GiB, then from 512 GiB.
// Throws common::Error if mem_size is 0.
std::vector<std::pair<GuestAddress, uint64_t>> arch_memory_regions(uint64_t mem_size);

// The memory map the guest sees: RAM below the MPTable, the reserved system
// area, the (PCI ECAM) reserved window, then every RAM region from 1 MiB up.
std::vector<E820Entry> build_e820(const GuestMemory& memory);

}  // namespace ember::vmm::arch
