#include "vmm/arch/x86_64/gdt.h"

namespace ember::vmm::arch {

uint64_t gdt_entry(uint16_t flags, uint32_t base, uint32_t limit) {
  uint64_t b = base, l = limit, f = flags;
  return ((b & 0xff000000ULL) << 32) | ((b & 0x00ffffffULL) << 16) | (l & 0xffffULL) |
         ((l & 0xf0000ULL) << 32) | ((f & 0xf0ffULL) << 40);
}

kvm_segment segment_from_gdt(uint64_t entry, uint8_t index) {
  kvm_segment seg{};
  seg.base = ((entry >> 16) & 0x00ffffffULL) | ((entry >> 32) & 0xff000000ULL);
  uint32_t limit = static_cast<uint32_t>((entry & 0xffffULL) | ((entry >> 32) & 0xf0000ULL));
  seg.g = (entry >> 55) & 1;
  // With 4 KiB granularity the limit counts pages.
  seg.limit = seg.g ? (limit << 12) | 0xfff : limit;
  seg.selector = static_cast<uint16_t>(index * 8);
  seg.type = (entry >> 40) & 0xf;
  seg.s = (entry >> 44) & 1;
  seg.dpl = (entry >> 45) & 3;
  seg.present = (entry >> 47) & 1;
  seg.avl = (entry >> 52) & 1;
  seg.l = (entry >> 53) & 1;
  seg.db = (entry >> 54) & 1;
  seg.unusable = seg.present ? 0 : 1;
  return seg;
}

}  // namespace ember::vmm::arch
