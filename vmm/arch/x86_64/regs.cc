#include "vmm/arch/x86_64/regs.h"

#include <array>

#include "vmm/arch/x86_64/gdt.h"
#include "vmm/arch/x86_64/layout.h"

namespace ember::vmm::arch {
namespace {

constexpr uint64_t kCr0Pe = 1ULL << 0;
constexpr uint64_t kCr0Et = 1ULL << 4;
constexpr uint64_t kCr0Pg = 1ULL << 31;
constexpr uint64_t kCr4Pae = 1ULL << 5;
constexpr uint64_t kEferLme = 1ULL << 8;
constexpr uint64_t kEferLma = 1ULL << 10;

constexpr uint64_t kPagePresentWritable = 0x3;
constexpr uint64_t kPageSize2M = 0x80;

// Index 0 null, 1 code, 2 data, 3 TSS: selectors 0x8, 0x10, 0x18.
std::array<uint64_t, 4> boot_gdt(BootProtocol protocol) {
  if (protocol == BootProtocol::kPvh) {
    // 32-bit flat code/data (PVH ABI: "CS: 32-bit read/execute, DS/ES/SS: 32-bit read/write").
    return {gdt_entry(0, 0, 0), gdt_entry(0xc09b, 0, 0xfffff), gdt_entry(0xc093, 0, 0xfffff),
            gdt_entry(0x008b, 0, 0x67)};
  }
  return {gdt_entry(0, 0, 0), gdt_entry(0xa09b, 0, 0xfffff), gdt_entry(0xc093, 0, 0xfffff),
          gdt_entry(0x808b, 0, 0xfffff)};
}

}  // namespace

kvm_regs boot_regs(BootProtocol protocol, GuestAddress entry) {
  kvm_regs regs{};
  regs.rflags = 0x2;  // bit 1 is reserved and always set
  regs.rip = entry.raw();
  if (protocol == BootProtocol::kPvh) {
    regs.rbx = kPvhInfoStart;
  } else {
    regs.rsp = kBootStackPointer;
    regs.rbp = kBootStackPointer;
    regs.rsi = kZeroPageStart;
  }
  return regs;
}

void write_identity_page_tables(const GuestMemory& memory) {
  memory.write_obj<uint64_t>(GuestAddress(kPml4Start), kPdptStart | kPagePresentWritable);
  memory.write_obj<uint64_t>(GuestAddress(kPdptStart), kPdStart | kPagePresentWritable);
  std::array<uint64_t, 512> pd;
  for (uint64_t i = 0; i < pd.size(); ++i) pd[i] = (i << 21) | kPageSize2M | kPagePresentWritable;
  memory.write_obj(GuestAddress(kPdStart), pd);
}

void configure_boot_sregs(const GuestMemory& memory, BootProtocol protocol, kvm_sregs& sregs) {
  auto gdt = boot_gdt(protocol);
  memory.write_obj(GuestAddress(kBootGdtStart), gdt);
  memory.write_obj<uint64_t>(GuestAddress(kBootIdtStart), 0);

  sregs.gdt.base = kBootGdtStart;
  sregs.gdt.limit = sizeof(gdt) - 1;
  sregs.idt.base = kBootIdtStart;
  sregs.idt.limit = sizeof(uint64_t) - 1;

  kvm_segment code = segment_from_gdt(gdt[1], 1);
  kvm_segment data = segment_from_gdt(gdt[2], 2);
  kvm_segment tss = segment_from_gdt(gdt[3], 3);
  sregs.cs = code;
  sregs.ds = data;
  sregs.es = data;
  sregs.fs = data;
  sregs.gs = data;
  sregs.ss = data;
  sregs.tr = tss;

  if (protocol == BootProtocol::kPvh) {
    sregs.cr0 = kCr0Pe | kCr0Et;
    sregs.cr4 = 0;
    sregs.efer = 0;
    return;
  }
  sregs.cr0 |= kCr0Pe;
  write_identity_page_tables(memory);
  sregs.cr3 = kPml4Start;
  sregs.cr4 |= kCr4Pae;
  sregs.cr0 |= kCr0Pg;
  sregs.efer |= kEferLme | kEferLma;
}

kvm_fpu boot_fpu() {
  kvm_fpu fpu{};
  fpu.fcw = 0x37f;
  fpu.mxcsr = 0x1f80;
  return fpu;
}

}  // namespace ember::vmm::arch
