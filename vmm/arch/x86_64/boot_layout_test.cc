// Guest layout, e820, zero page, PVH start info, GDT, page tables, boot
// registers and MPTable, checked in real (anonymous) guest memory.
#include <gtest/gtest.h>

#include <cstring>

#include "vmm/arch/x86_64/gdt.h"
#include "vmm/arch/x86_64/lapic.h"
#include "vmm/arch/x86_64/layout.h"
#include "vmm/arch/x86_64/linux_boot.h"
#include "vmm/arch/x86_64/memory_map.h"
#include "vmm/arch/x86_64/mptable.h"
#include "vmm/arch/x86_64/msr.h"
#include "vmm/arch/x86_64/pvh.h"
#include "vmm/arch/x86_64/regs.h"
#include "vmm/common/error.h"

namespace ember::vmm::arch {
namespace {

GuestMemory memory_of(uint64_t mib) { return GuestMemory::anonymous(arch_memory_regions(mib << 20)); }

TEST(MemoryMap, SmallGuestIsOneRegionFromZero) {
  auto regions = arch_memory_regions(128 * kMiB);
  ASSERT_EQ(regions.size(), 1u);
  EXPECT_EQ(regions[0].first, GuestAddress(0));
  EXPECT_EQ(regions[0].second, 128 * kMiB);
}

TEST(MemoryMap, LargeGuestSkipsTheMmioHoleAt3GiB) {
  auto regions = arch_memory_regions(6 * kGiB);
  ASSERT_EQ(regions.size(), 2u);
  EXPECT_EQ(regions[0].second, 3 * kGiB);
  EXPECT_EQ(regions[1].first, GuestAddress(4 * kGiB));
  EXPECT_EQ(regions[1].second, 3 * kGiB);
}

TEST(MemoryMap, ExactlyThreeGiBNeedsNoSecondRegion) {
  EXPECT_EQ(arch_memory_regions(3 * kGiB).size(), 1u);
}

TEST(MemoryMap, HugeGuestSkipsThe64BitMmioHole) {
  auto regions = arch_memory_regions(300 * kGiB);
  ASSERT_EQ(regions.size(), 3u);
  EXPECT_EQ(regions[1].first.raw() + regions[1].second, kMmio64Start);
  EXPECT_EQ(regions[2].first, GuestAddress(kMmio64Start + kMmio64Size));
  EXPECT_EQ(regions[0].second + regions[1].second + regions[2].second, 300 * kGiB);
}

TEST(MemoryMap, ZeroSizeIsAnError) { EXPECT_THROW(arch_memory_regions(0), common::Error); }

TEST(MemoryMap, E820ListsLowRamReservedAreasAndRamFrom1MiB) {
  auto mem = memory_of(128);
  auto e820 = build_e820(mem);
  std::vector<E820Entry> expected = {{0, 0x9fc00, kE820Ram},
                                     {0x9fc00, 0x40400, kE820Reserved},
                                     {0xeec00000, 0x10000000, kE820Reserved},
                                     {0x100000, 128 * kMiB - 0x100000, kE820Ram}};
  EXPECT_EQ(e820, expected);
}

TEST(ZeroPage, VmlinuxGetsAZeroedHeaderWithLoaderFields) {
  auto mem = memory_of(64);
  BootInfo info;
  info.cmdline_addr = GuestAddress(kCmdlineStart);
  info.cmdline_size = 12;
  info.initrd = InitrdRegion{GuestAddress(0x3000000), 4096};
  configure_linux_boot(mem, info);
  auto p = mem.read_obj<BootParams>(GuestAddress(kZeroPageStart));
  EXPECT_EQ(+p.hdr.boot_flag, 0xaa55);
  EXPECT_EQ(+p.hdr.header, 0x53726448u);
  EXPECT_EQ(+p.hdr.type_of_loader, 0xff);
  EXPECT_EQ(+p.hdr.kernel_alignment, 0x1000000u);
  EXPECT_EQ(+p.hdr.cmd_line_ptr, 0x20000u);
  EXPECT_EQ(+p.hdr.cmdline_size, 12u);
  EXPECT_EQ(+p.hdr.ramdisk_image, 0x3000000u);
  EXPECT_EQ(+p.hdr.ramdisk_size, 4096u);
  EXPECT_EQ(+p.hdr.version, 0);  // nothing else from a header that does not exist
  EXPECT_EQ(+p.acpi_rsdp_addr, 0u);
  ASSERT_EQ(p.e820_entries, 4);
  EXPECT_EQ(+p.e820_table[3].addr, 0x100000u);
  EXPECT_EQ(+p.e820_table[3].size, 64 * kMiB - 0x100000);
  EXPECT_EQ(+p.e820_table[3].type, kE820Ram);
}

TEST(ZeroPage, BzImageHeaderSeedsTheZeroPage) {
  auto mem = memory_of(64);
  SetupHeader hdr{};
  hdr.version = 0x020f;
  hdr.setup_sects = 27;
  hdr.xloadflags = 0x7f;
  hdr.kernel_alignment = 0x200000;
  hdr.init_size = 0x1234000;
  hdr.type_of_loader = 0;
  BootInfo info;
  info.cmdline_addr = GuestAddress(kCmdlineStart);
  info.cmdline_size = 1;
  info.setup_header = hdr;
  BootParams p = build_zero_page(mem, info);
  EXPECT_EQ(+p.hdr.version, 0x020f);
  EXPECT_EQ(+p.hdr.setup_sects, 27);
  EXPECT_EQ(+p.hdr.xloadflags, 0x7f);
  EXPECT_EQ(+p.hdr.kernel_alignment, 0x200000u);
  EXPECT_EQ(+p.hdr.init_size, 0x1234000u);
  EXPECT_EQ(+p.hdr.type_of_loader, 0xff);
  EXPECT_EQ(+p.hdr.ramdisk_image, 0u);
}

TEST(Pvh, StartInfoMemmapAndModuleAreWritten) {
  auto mem = memory_of(64);
  BootInfo info;
  info.cmdline_addr = GuestAddress(kCmdlineStart);
  info.initrd = InitrdRegion{GuestAddress(0x2000000), 1000};
  configure_pvh_boot(mem, info);
  auto start = mem.read_obj<HvmStartInfo>(GuestAddress(kPvhInfoStart));
  EXPECT_EQ(+start.magic, kHvmStartMagic);
  EXPECT_EQ(+start.version, 1u);
  EXPECT_EQ(+start.cmdline_paddr, kCmdlineStart);
  EXPECT_EQ(+start.memmap_paddr, kMemmapStart);
  EXPECT_EQ(+start.memmap_entries, 4u);
  EXPECT_EQ(+start.nr_modules, 1u);
  EXPECT_EQ(+start.modlist_paddr, kModlistStart);
  auto module = mem.read_obj<HvmModlistEntry>(GuestAddress(kModlistStart));
  EXPECT_EQ(+module.paddr, 0x2000000u);
  EXPECT_EQ(+module.size, 1000u);
  auto last = mem.read_obj<HvmMemmapEntry>(GuestAddress(kMemmapStart + 3 * sizeof(HvmMemmapEntry)));
  EXPECT_EQ(+last.addr, 0x100000u);
  EXPECT_EQ(+last.type, kE820Ram);
}

TEST(Pvh, NoInitrdMeansNoModules) {
  auto mem = memory_of(64);
  BootInfo info;
  configure_pvh_boot(mem, info);
  auto start = mem.read_obj<HvmStartInfo>(GuestAddress(kPvhInfoStart));
  EXPECT_EQ(+start.nr_modules, 0u);
  EXPECT_EQ(+start.modlist_paddr, 0u);
}

TEST(Gdt, EncodesFlatDescriptors) {
  EXPECT_EQ(gdt_entry(0xa09b, 0, 0xfffff), 0x00af9b000000ffffULL);
  EXPECT_EQ(gdt_entry(0xc093, 0, 0xfffff), 0x00cf93000000ffffULL);
  EXPECT_EQ(gdt_entry(0x808b, 0, 0xfffff), 0x008f8b000000ffffULL);
  EXPECT_EQ(gdt_entry(0xc09b, 0x12345678, 0xabcde), 0x12ca9b345678bcdeULL);
}

TEST(Gdt, DecodesIntoKvmSegments) {
  kvm_segment code = segment_from_gdt(gdt_entry(0xa09b, 0, 0xfffff), 1);
  EXPECT_EQ(code.selector, 0x8);
  EXPECT_EQ(code.base, 0u);
  EXPECT_EQ(code.limit, 0xffffffffu);
  EXPECT_EQ(code.type, 0xb);
  EXPECT_EQ(code.present, 1);
  EXPECT_EQ(code.s, 1);
  EXPECT_EQ(code.l, 1);
  EXPECT_EQ(code.db, 0);
  EXPECT_EQ(code.g, 1);
  kvm_segment data = segment_from_gdt(gdt_entry(0xc093, 0x1000, 0xff), 2);
  EXPECT_EQ(data.selector, 0x10);
  EXPECT_EQ(data.base, 0x1000u);
  EXPECT_EQ(data.db, 1);
  EXPECT_EQ(data.l, 0);
  kvm_segment null = segment_from_gdt(0, 0);
  EXPECT_EQ(null.unusable, 1);
}

TEST(BootRegs, LinuxEntryRegisters) {
  kvm_regs r = boot_regs(BootProtocol::kLinux64, GuestAddress(0x1000000));
  EXPECT_EQ(r.rip, 0x1000000u);
  EXPECT_EQ(r.rsi, kZeroPageStart);
  EXPECT_EQ(r.rsp, kBootStackPointer);
  EXPECT_EQ(r.rbp, kBootStackPointer);
  EXPECT_EQ(r.rflags, 2u);
  EXPECT_EQ(r.rbx, 0u);
}

TEST(BootRegs, PvhEntryRegisters) {
  kvm_regs r = boot_regs(BootProtocol::kPvh, GuestAddress(0x1000040));
  EXPECT_EQ(r.rip, 0x1000040u);
  EXPECT_EQ(r.rbx, kPvhInfoStart);
  EXPECT_EQ(r.rsi, 0u);
}

TEST(BootRegs, LinuxSregsEnableLongModeWithIdentityPaging) {
  auto mem = memory_of(64);
  kvm_sregs s{};
  s.cr0 = 0x60000010;  // what KVM reports after reset
  configure_boot_sregs(mem, BootProtocol::kLinux64, s);
  EXPECT_EQ(s.cr0 & 0x80000001, 0x80000001u);
  EXPECT_EQ(s.cr3, kPml4Start);
  EXPECT_EQ(s.cr4 & 0x20, 0x20u);
  EXPECT_EQ(s.efer & 0x500, 0x500u);
  EXPECT_EQ(s.gdt.base, kBootGdtStart);
  EXPECT_EQ(s.gdt.limit, 31);
  EXPECT_EQ(s.idt.base, kBootIdtStart);
  EXPECT_EQ(s.idt.limit, 7);
  EXPECT_EQ(s.cs.selector, 0x8);
  EXPECT_EQ(s.cs.l, 1);
  EXPECT_EQ(s.ds.selector, 0x10);
  EXPECT_EQ(s.ss.selector, 0x10);
  EXPECT_EQ(s.tr.selector, 0x18);
  EXPECT_EQ(mem.read_obj<uint64_t>(GuestAddress(kBootGdtStart + 8)), 0x00af9b000000ffffULL);
  EXPECT_EQ(mem.read_obj<uint64_t>(GuestAddress(kPml4Start)), 0xa003u);
  EXPECT_EQ(mem.read_obj<uint64_t>(GuestAddress(kPdptStart)), 0xb003u);
  EXPECT_EQ(mem.read_obj<uint64_t>(GuestAddress(kPdStart)), 0x83u);
  EXPECT_EQ(mem.read_obj<uint64_t>(GuestAddress(kPdStart + 8)), 0x200083u);
  EXPECT_EQ(mem.read_obj<uint64_t>(GuestAddress(kPdStart + 511 * 8)), (511ULL << 21) | 0x83);
}

TEST(BootRegs, PvhSregsAreFlatProtectedModeWithoutPaging) {
  auto mem = memory_of(64);
  kvm_sregs s{};
  s.cr0 = 0x60000010;
  s.cr4 = 0x20;
  s.efer = 0x500;
  configure_boot_sregs(mem, BootProtocol::kPvh, s);
  EXPECT_EQ(s.cr0, 0x11u);
  EXPECT_EQ(s.cr4, 0u);
  EXPECT_EQ(s.efer, 0u);
  EXPECT_EQ(s.cs.db, 1);
  EXPECT_EQ(s.cs.l, 0);
  EXPECT_EQ(s.cs.limit, 0xffffffffu);
  EXPECT_EQ(s.tr.type, 0xb);
  EXPECT_EQ(mem.read_obj<uint64_t>(GuestAddress(kPml4Start)), 0u) << "PVH enters without paging";
}

TEST(BootRegs, FpuDefaults) {
  kvm_fpu f = boot_fpu();
  EXPECT_EQ(f.fcw, 0x37f);
  EXPECT_EQ(f.mxcsr, 0x1f80u);
}

TEST(BootMsrs, SetsFastStringsAndWriteBackMtrrDefault) {
  auto msrs = boot_msr_entries();
  auto find = [&](uint32_t index) -> const MsrEntry* {
    for (auto& m : msrs) {
      if (m.index == index) return &m;
    }
    return nullptr;
  };
  ASSERT_TRUE(find(kMsrIa32MiscEnable));
  EXPECT_EQ(find(kMsrIa32MiscEnable)->data, 1u);
  ASSERT_TRUE(find(kMsrMtrrDefType));
  EXPECT_EQ(find(kMsrMtrrDefType)->data, 0x806u);
  for (uint32_t zero : {kMsrIa32SysenterCs, kMsrStar, kMsrLstar, kMsrCstar, kMsrSyscallMask, kMsrKernelGsBase,
                        kMsrIa32Tsc}) {
    ASSERT_TRUE(find(zero)) << zero;
    EXPECT_EQ(find(zero)->data, 0u);
  }
}

TEST(Lapic, Lint0IsExtIntAndLint1IsNmi) {
  kvm_lapic_state s{};
  set_lapic_register(s, kApicLvtLint0, 0x10000);  // masked, fixed
  set_lapic_register(s, kApicLvtLint1, 0x10700);
  set_lint_delivery_modes(s);
  EXPECT_EQ(lapic_register(s, kApicLvtLint0), 0x10700u);
  EXPECT_EQ(lapic_register(s, kApicLvtLint1), 0x10400u);
}

uint8_t sum(const GuestMemory& mem, uint64_t addr, uint64_t len) {
  std::vector<uint8_t> bytes(len);
  mem.read(GuestAddress(addr), bytes);
  uint8_t s = 0;
  for (uint8_t b : bytes) s = static_cast<uint8_t>(s + b);
  return s;
}

TEST(MpTable, DescribesCpusIoapicAndIsaInterrupts) {
  auto mem = memory_of(64);
  setup_mptable(mem, 4);
  auto mpf = mem.read_obj<MpFloatingPointer>(GuestAddress(kMptableStart));
  EXPECT_EQ(std::memcmp(mpf.signature, "_MP_", 4), 0);
  EXPECT_EQ(+mpf.spec_rev, 4);
  EXPECT_EQ(sum(mem, kMptableStart, sizeof mpf), 0) << "floating pointer checksum";
  auto header = mem.read_obj<MpConfigHeader>(GuestAddress(mpf.physptr));
  EXPECT_EQ(std::memcmp(header.signature, "PCMP", 4), 0);
  EXPECT_EQ(sum(mem, +mpf.physptr, +header.length), 0) << "configuration table checksum";
  EXPECT_EQ(+header.lapic_addr, kLapicAddr);
  EXPECT_EQ(+header.entry_count, 4 + 1 + 1 + 24 + 2);
  EXPECT_EQ(sizeof(MpFloatingPointer) + header.length, mptable_size(4));
  uint64_t p = mpf.physptr + sizeof(MpConfigHeader);
  for (uint8_t cpu = 0; cpu < 4; ++cpu, p += sizeof(MpProcessorEntry)) {
    auto e = mem.read_obj<MpProcessorEntry>(GuestAddress(p));
    EXPECT_EQ(+e.type, 0);
    EXPECT_EQ(+e.lapic_id, cpu);
    EXPECT_EQ(+e.cpu_flags, cpu == 0 ? 3 : 1);
  }
  p += sizeof(MpBusEntry);
  auto ioapic = mem.read_obj<MpIoapicEntry>(GuestAddress(p));
  EXPECT_EQ(+ioapic.type, 2);
  EXPECT_EQ(+ioapic.apic_id, 5);
  EXPECT_EQ(+ioapic.apic_addr, kIoapicAddr);
  p += sizeof(MpIoapicEntry);
  auto irq4 = mem.read_obj<MpInterruptEntry>(GuestAddress(p + 4 * sizeof(MpInterruptEntry)));
  EXPECT_EQ(+irq4.src_bus_irq, 4);
  EXPECT_EQ(+irq4.dst_irq, 4);
  EXPECT_EQ(+irq4.dst_apic_id, 5);
}

TEST(MpTable, RejectsZeroCpus) {
  auto mem = memory_of(64);
  EXPECT_THROW(setup_mptable(mem, 0), common::Error);
}

}  // namespace
}  // namespace ember::vmm::arch
