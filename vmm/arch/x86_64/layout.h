// Guest physical layout of an x86_64 microVM (reference/firecracker-compat.md
// §2.3). Guest kernels, payloads and tools depend on these addresses; change
// none of them without changing the reference.
#pragma once

#include <cstdint>

namespace ember::vmm::arch {

inline constexpr uint64_t kMiB = 1ULL << 20;
inline constexpr uint64_t kGiB = 1ULL << 30;

// Boot GDT (4 entries) and the one-entry IDT KVM needs before the guest loads its own.
inline constexpr uint64_t kBootGdtStart = 0x500;
inline constexpr uint64_t kBootIdtStart = 0x520;

// PVH: hvm_start_info, module list, memory map. The Linux zero page shares 0x7000
// with the PVH memory map (only one boot protocol is used at a time).
inline constexpr uint64_t kPvhInfoStart = 0x6000;
inline constexpr uint64_t kModlistStart = 0x6040;
inline constexpr uint64_t kMemmapStart = 0x7000;
inline constexpr uint64_t kZeroPageStart = 0x7000;

// Initial stack (RSP = RBP) for the 64-bit Linux entry.
inline constexpr uint64_t kBootStackPointer = 0x8ff0;

// Identity page tables for the first 1 GiB (2 MiB pages).
inline constexpr uint64_t kPml4Start = 0x9000;
inline constexpr uint64_t kPdptStart = 0xa000;
inline constexpr uint64_t kPdStart = 0xb000;

inline constexpr uint64_t kCmdlineStart = 0x20000;
inline constexpr uint64_t kCmdlineMaxSize = 2048;  // including the trailing NUL

// "System memory" below 1 MiB: MPTable (and later ACPI tables); e820-reserved.
inline constexpr uint64_t kSystemMemStart = 0x9fc00;
inline constexpr uint64_t kSystemMemSize = 0xe0000 - kSystemMemStart;
inline constexpr uint64_t kMptableStart = kSystemMemStart;
inline constexpr uint64_t kRsdpAddr = 0xe0000;

// Kernels are loaded at 1 MiB and up; e820 RAM above the BIOS area starts here.
inline constexpr uint64_t kHimemStart = 0x100000;

// The 32-bit MMIO hole [3 GiB, 4 GiB): devices, ECAM, IOAPIC, LAPIC.
inline constexpr uint64_t kMmio32Start = 3 * kGiB;
inline constexpr uint64_t kMmio32Size = kGiB;
inline constexpr uint64_t kBootTimerAddr = 0xc0000000;
inline constexpr uint64_t kBootTimerSize = 0x1000;
inline constexpr uint64_t kVirtioMmioStart = 0xc0001000;
inline constexpr uint64_t kVirtioMmioSize = 0x1000;
inline constexpr uint64_t kPciMmconfigStart = 0xeec00000;
inline constexpr uint64_t kPciMmconfigSize = 256 * kMiB;
inline constexpr uint64_t kIoapicAddr = 0xfec00000;
inline constexpr uint64_t kLapicAddr = 0xfee00000;
// KVM_SET_TSS_ADDR: three pages KVM uses for real-mode emulation on Intel.
inline constexpr uint64_t kTssAddr = 0xfffbd000;

inline constexpr uint64_t kFirstAddrPastMmio32 = 4 * kGiB;
// 64-bit MMIO hole [256 GiB, 512 GiB) for PCI BARs; RAM resumes after it.
inline constexpr uint64_t kMmio64Start = 256 * kGiB;
inline constexpr uint64_t kMmio64Size = 256 * kGiB;

// Legacy GSIs: serial 4, i8042 1, virtio-mmio devices 5..23.
inline constexpr uint32_t kI8042Gsi = 1;
inline constexpr uint32_t kSerialGsi = 4;
inline constexpr uint32_t kFirstVirtioGsi = 5;
inline constexpr uint32_t kLastLegacyGsi = 23;
inline constexpr uint32_t kMaxVirtioMmioDevices = kLastLegacyGsi - kFirstVirtioGsi + 1;

// Legacy port I/O.
inline constexpr uint16_t kSerialPort = 0x3f8;
inline constexpr uint16_t kSerialPortSize = 8;
inline constexpr uint16_t kI8042Port = 0x60;
inline constexpr uint16_t kI8042PortSize = 5;

}  // namespace ember::vmm::arch
