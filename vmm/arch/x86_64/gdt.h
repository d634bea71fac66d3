// Segment descriptors (Intel SDM vol. 3A §3.4.5) for the boot GDT, and their
// KVM form. `flags` packs the access byte in bits 0-7 and G/DB/L/AVL in 15-12,
// e.g. 0xa09b = 64-bit code, 0xc093 = flat data, 0x808b = busy 64-bit TSS.
#pragma once

#include <linux/kvm.h>

#include <cstdint>

namespace ember::vmm::arch {

uint64_t gdt_entry(uint16_t flags, uint32_t base, uint32_t limit);
// The segment register contents a `mov` of selector `index * 8` would load.
kvm_segment segment_from_gdt(uint64_t entry, uint8_t index);

}  // namespace ember::vmm::arch
