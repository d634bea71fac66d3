// PVH direct boot (Xen's x86/HVM direct boot ABI, include/xen/interface/hvm/start_info.h):
// the kernel is entered in 32-bit protected mode with RBX pointing at an
// hvm_start_info structure.
#pragma once

#include <cstdint>

#include "vmm/arch/x86_64/boot_info.h"
#include "vmm/vstate/guest_memory.h"

namespace ember::vmm::arch {

inline constexpr uint32_t kHvmStartMagic = 0x336ec578;
// Xen ELF note type carrying the 32-bit PVH entry (include/xen/interface/elfnote.h).
inline constexpr uint32_t kXenElfNotePhys32Entry = 18;

#pragma pack(push, 1)
struct HvmStartInfo {
  uint32_t magic;
  uint32_t version;
  uint32_t flags;
  uint32_t nr_modules;
  uint64_t modlist_paddr;
  uint64_t cmdline_paddr;
  uint64_t rsdp_paddr;
  uint64_t memmap_paddr;
  uint32_t memmap_entries;
  uint32_t reserved;
};
struct HvmModlistEntry {
  uint64_t paddr;
  uint64_t size;
  uint64_t cmdline_paddr;
  uint64_t reserved;
};
struct HvmMemmapEntry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
  uint32_t reserved;
};
#pragma pack(pop)
static_assert(sizeof(HvmStartInfo) == 56);
static_assert(sizeof(HvmModlistEntry) == 32);
static_assert(sizeof(HvmMemmapEntry) == 24);

// Writes hvm_start_info at kPvhInfoStart, the initrd module at kModlistStart
// and the memory map at kMemmapStart.
void configure_pvh_boot(const GuestMemory& memory, const BootInfo& info);

}  // namespace ember::vmm::arch
