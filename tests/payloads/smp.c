/* Brings up every application processor the MPTable lists with INIT/SIPI
 * through the local APIC; each AP prints a line and bumps a counter. */
#include "payload.h"

#define MAX_CPUS 32
#define AP_STACK_SIZE 8192

static uint8_t ap_stacks[MAX_CPUS][AP_STACK_SIZE] __attribute__((aligned(16)));
static volatile uint32_t aps_alive;

static void ap_main(void) {
  pl_printf("AP %u alive\n", lapic_id());
  __atomic_fetch_add(&aps_alive, 1, __ATOMIC_SEQ_CST);
  for (;;) __asm__ volatile("cli; hlt");
}

void payload_main(void) {
  paging_map_4g();
  uint64_t mpf = 0x9fc00;
  PAYLOAD_CHECK(memcmp((void*)mpf, "_MP_", 4) == 0);
  uint64_t table = *(volatile uint32_t*)(mpf + 4);
  uint16_t count = *(volatile uint16_t*)(table + 34);
  uint8_t apic_ids[MAX_CPUS];
  unsigned cpus = 0;
  uint64_t p = table + 44;
  for (; count > 0; --count) {
    uint8_t type = *(volatile uint8_t*)p;
    if (type == 0) {
      if (cpus < MAX_CPUS) apic_ids[cpus++] = *(volatile uint8_t*)(p + 1);
      p += 20;
    } else {
      p += 8;
    }
  }
  uint32_t self = lapic_id();
  pl_printf("BSP %u sees %u cpus\n", self, cpus);
  unsigned started = 0;
  for (unsigned i = 0; i < cpus; ++i) {
    if (apic_ids[i] == self) continue;
    uint32_t before = aps_alive;
    smp_start_ap(apic_ids[i], ap_main, ap_stacks[i] + AP_STACK_SIZE);
    ++started;
    /* One AP at a time: they share the trampoline page. */
    for (uint64_t spins = 0; aps_alive == before; ++spins) {
      if (spins > 200000000ULL) payload_fail("an AP did not come up");
      cpu_relax();
    }
  }
  pl_printf("all %u APs alive\n", started);
  PAYLOAD_CHECK(aps_alive == started);
  payload_pass();
}
