#include "vmm/arch/x86_64/memory_map.h"

#include <algorithm>

#include "vmm/arch/x86_64/layout.h"
#include "vmm/common/error.h"

namespace ember::vmm::arch {

std::vector<std::pair<GuestAddress, uint64_t>> arch_memory_regions(uint64_t mem_size) {
  if (mem_size == 0) throw common::Error("guest memory size must be greater than 0");
  std::vector<std::pair<GuestAddress, uint64_t>> regions;
  uint64_t low = std::min(mem_size, kMmio32Start);
  regions.emplace_back(GuestAddress(0), low);
  uint64_t rest = mem_size - low;
  if (rest == 0) return regions;
  uint64_t below_mmio64 = std::min(rest, kMmio64Start - kFirstAddrPastMmio32);
  regions.emplace_back(GuestAddress(kFirstAddrPastMmio32), below_mmio64);
  rest -= below_mmio64;
  if (rest > 0) regions.emplace_back(GuestAddress(kMmio64Start + kMmio64Size), rest);
  return regions;
}

std::vector<E820Entry> build_e820(const GuestMemory& memory) {
  std::vector<E820Entry> map;
  map.push_back({0, kSystemMemStart, kE820Ram});
  map.push_back({kSystemMemStart, kSystemMemSize, kE820Reserved});
  map.push_back({kPciMmconfigStart, kPciMmconfigSize, kE820Reserved});
  for (const auto& region : memory.regions()) {
    // Below 1 MiB only [0, kSystemMemStart) is usable RAM (the BIOS area
    // 0xE0000-0xFFFFF is simply absent), as the entries above say.
    uint64_t start = std::max(region.start.raw(), kHimemStart);
    uint64_t end = region.end().raw();
    if (end <= start) continue;
    map.push_back({start, end - start, kE820Ram});
  }
  return map;
}

}  // namespace ember::vmm::arch
