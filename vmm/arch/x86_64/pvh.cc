#include "vmm/arch/x86_64/pvh.h"

#include "vmm/arch/x86_64/layout.h"
#include "vmm/arch/x86_64/memory_map.h"
#include "vmm/common/error.h"

namespace ember::vmm::arch {

void configure_pvh_boot(const GuestMemory& memory, const BootInfo& info) {
  auto e820 = build_e820(memory);
  // The memory map must fit below the stack/page tables at 0x8ff0.
  if (kMemmapStart + e820.size() * sizeof(HvmMemmapEntry) > kBootStackPointer) {
    throw common::Error("too many PVH memory map entries");
  }
  for (size_t i = 0; i < e820.size(); ++i) {
    HvmMemmapEntry entry{e820[i].addr, e820[i].size, e820[i].type, 0};
    memory.write_obj(GuestAddress(kMemmapStart + i * sizeof(HvmMemmapEntry)), entry);
  }
  HvmStartInfo start{};
  start.magic = kHvmStartMagic;
  start.version = 1;
  start.cmdline_paddr = info.cmdline_addr.raw();
  start.memmap_paddr = kMemmapStart;
  start.memmap_entries = static_cast<uint32_t>(e820.size());
  if (info.initrd) {
    HvmModlistEntry module{info.initrd->address.raw(), info.initrd->size, 0, 0};
    memory.write_obj(GuestAddress(kModlistStart), module);
    start.nr_modules = 1;
    start.modlist_paddr = kModlistStart;
  }
  memory.write_obj(GuestAddress(kPvhInfoStart), start);
}

}  // namespace ember::vmm::arch
