// Boot-time register state of the boot vCPU for each boot protocol
// (reference/firecracker-compat.md §2.4), and the guest memory it relies on
// (GDT, IDT, identity page tables).
#pragma once

#include <linux/kvm.h>

#include "vmm/arch/x86_64/boot_info.h"
#include "vmm/vstate/guest_memory.h"

namespace ember::vmm::arch {

// General registers: RIP = entry, RFLAGS = 0x2; Linux: RSI = zero page,
// RSP = RBP = boot stack; PVH: RBX = hvm_start_info.
kvm_regs boot_regs(BootProtocol protocol, GuestAddress entry);

// Writes the boot GDT and IDT (and, for Linux, the identity page tables for
// the first 1 GiB) into `memory` and updates `sregs` (as read from KVM) to
// match: flat segments, long mode with paging for Linux, 32-bit protected
// mode without paging for PVH.
void configure_boot_sregs(const GuestMemory& memory, BootProtocol protocol, kvm_sregs& sregs);

// x87 control word 0x37f and MXCSR 0x1f80: the power-on defaults the kernel expects.
kvm_fpu boot_fpu();

// Identity page tables: PML4 at kPml4Start -> PDPT -> one PD of 512 2 MiB pages.
void write_identity_page_tables(const GuestMemory& memory);

}  // namespace ember::vmm::arch
