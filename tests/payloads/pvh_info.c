/* Entered through the PVH ELF note: checks the 32-bit entry state and the
 * hvm_start_info (magic, command line, memory map). */
#include "payload.h"

#define HVM_START_MAGIC 0x336ec578

void payload_main(void) {
  struct entry_state* e = &payload_entry_state;
  pl_printf("pvh entered=%d rbx=0x%lx cr0=0x%lx cr4=0x%lx efer=0x%lx cs=0x%x ds=0x%x\n", e->pvh, e->rbx, e->cr0,
            e->cr4, e->efer, e->cs, e->ds);
  uint64_t si = e->rbx;
  uint32_t magic = *(volatile uint32_t*)si;
  uint32_t version = *(volatile uint32_t*)(si + 4);
  uint64_t cmdline = *(volatile uint64_t*)(si + 24);
  uint64_t memmap = *(volatile uint64_t*)(si + 40);
  uint32_t memmap_entries = *(volatile uint32_t*)(si + 48);
  pl_printf("start_info magic=0x%x version=%u memmap=0x%lx entries=%u\n", magic, version, memmap, memmap_entries);
  pl_printf("cmdline=[%s]\n", (const char*)cmdline);
  for (uint32_t i = 0; i < memmap_entries; ++i) {
    uint64_t ent = memmap + i * 24;
    pl_printf("memmap addr=0x%lx size=0x%lx type=%u\n", *(volatile uint64_t*)ent,
              *(volatile uint64_t*)(ent + 8), *(volatile uint32_t*)(ent + 16));
  }
  PAYLOAD_CHECK(e->pvh == 1);
  PAYLOAD_CHECK(magic == HVM_START_MAGIC);
  payload_pass();
}
