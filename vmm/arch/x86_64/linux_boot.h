// The 64-bit Linux boot protocol's zero page (boot.rst, "64-bit Boot Protocol").
#pragma once

#include "vmm/arch/x86_64/boot_info.h"
#include "vmm/arch/x86_64/boot_params.h"
#include "vmm/vstate/guest_memory.h"

namespace ember::vmm::arch {

// The zero page for `info`: the image's setup header (or a zeroed one with
// kernel_alignment set, for vmlinux) with loader type, magic values, command
// line and ramdisk fields filled in, and the e820 map of `memory`.
BootParams build_zero_page(const GuestMemory& memory, const BootInfo& info);

// Writes build_zero_page() at kZeroPageStart.
void configure_linux_boot(const GuestMemory& memory, const BootInfo& info);

}  // namespace ember::vmm::arch
