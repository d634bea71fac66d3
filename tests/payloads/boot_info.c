/* Reports what the guest sees at entry through the 64-bit Linux boot
 * protocol: registers, control registers, the zero page (header fields,
 * command line, e820 map), the MPTable, CPUID. The test compares it with
 * what ember should have set up. */
#include "payload.h"

static uint64_t rd64(uint64_t a) { return *(volatile uint64_t*)a; }
static uint32_t rd32(uint64_t a) { return *(volatile uint32_t*)a; }
static uint16_t rd16(uint64_t a) { return *(volatile uint16_t*)a; }
static uint8_t rd8(uint64_t a) { return *(volatile uint8_t*)a; }

static void cpuid(uint32_t leaf, uint32_t sub, uint32_t* a, uint32_t* b, uint32_t* c, uint32_t* d) {
  __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(sub));
}

static void report_mptable(void) {
  uint64_t mpf = 0x9fc00;
  if (memcmp((void*)mpf, "_MP_", 4) != 0) {
    serial_puts("mptable missing\n");
    return;
  }
  uint8_t sum = 0;
  for (int i = 0; i < 16; ++i) sum = (uint8_t)(sum + rd8(mpf + i));
  uint64_t table = rd32(mpf + 4);
  uint16_t length = rd16(table + 4);
  uint8_t table_sum = 0;
  for (uint16_t i = 0; i < length; ++i) table_sum = (uint8_t)(table_sum + rd8(table + i));
  unsigned cpus = 0;
  uint64_t ioapic = 0;
  uint64_t p = table + 44;
  for (uint16_t n = rd16(table + 34); n > 0; --n) {
    uint8_t type = rd8(p);
    if (type == 0) {
      ++cpus;
      p += 20;
    } else {
      if (type == 2) ioapic = rd32(p + 4);
      p += 8;
    }
  }
  pl_printf("mptable signature=%s checksum=%s cpus=%u ioapic=0x%lx lapic=0x%x\n",
            memcmp((void*)table, "PCMP", 4) == 0 ? "PCMP" : "bad",
            (sum == 0 && table_sum == 0) ? "ok" : "bad", cpus, ioapic, rd32(table + 36));
}

void payload_main(void) {
  struct entry_state* e = &payload_entry_state;
  pl_printf("entry rsi=0x%lx rsp=0x%lx rbp=0x%lx rflags=0x%lx\n", e->rsi, e->rsp, e->rbp, e->rflags);
  pl_printf("entry cr0=0x%lx cr3=0x%lx cr4=0x%lx efer=0x%lx cs=0x%x ds=0x%x ss=0x%x\n", e->cr0, e->cr3,
            e->cr4, e->efer, e->cs, e->ds, e->ss);

  uint64_t zp = e->rsi;
  pl_printf("zeropage boot_flag=0x%x header=0x%x type_of_loader=0x%x kernel_alignment=0x%x\n",
            rd16(zp + ZP_BOOT_FLAG), rd32(zp + ZP_HEADER), rd8(zp + ZP_TYPE_OF_LOADER),
            rd32(zp + ZP_KERNEL_ALIGNMENT));
  uint64_t cmdline = rd32(zp + ZP_CMD_LINE_PTR);
  pl_printf("zeropage cmd_line_ptr=0x%lx cmdline_size=%u\n", cmdline, rd32(zp + ZP_CMDLINE_SIZE));
  pl_printf("cmdline=[%s]\n", (const char*)cmdline);
  pl_printf("zeropage ramdisk_image=0x%x ramdisk_size=%u\n", rd32(zp + ZP_RAMDISK_IMAGE),
            rd32(zp + ZP_RAMDISK_SIZE));
  unsigned entries = rd8(zp + ZP_E820_ENTRIES);
  pl_printf("e820 entries=%u\n", entries);
  for (unsigned i = 0; i < entries; ++i) {
    uint64_t ent = zp + ZP_E820_TABLE + i * 20;
    pl_printf("e820 addr=0x%lx size=0x%lx type=%u\n", rd64(ent), rd64(ent + 8), rd32(ent + 16));
  }
  report_mptable();

  uint32_t a, b, c, d;
  cpuid(1, 0, &a, &b, &c, &d);
  pl_printf("cpuid apic_id=%u hypervisor=%u\n", b >> 24, (c >> 31) & 1);
  payload_pass();
}
