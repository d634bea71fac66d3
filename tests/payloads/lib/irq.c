/* Interrupts for payloads: an IDT for vectors 0x20-0x3f, the local APIC
 * enabled, the 8259 PIC masked, and IOAPIC routing of a GSI to a vector on
 * APIC 0 (Intel 82093AA IOAPIC data sheet §3.2.4; SDM vol. 3A §10). */
#include "payload.h"

#define IOAPIC_BASE 0xfec00000ULL
#define LAPIC_BASE 0xfee00000ULL
#define LAPIC_TPR 0x80
#define LAPIC_EOI 0xb0
#define LAPIC_SVR 0xf0

struct __attribute__((packed)) idt_gate {
  uint16_t offset_low;
  uint16_t selector;
  uint8_t ist;
  uint8_t type_attr;
  uint16_t offset_mid;
  uint32_t offset_high;
  uint32_t zero;
};

static struct idt_gate idt[64] __attribute__((aligned(16)));
static irq_handler handlers[64];
extern const uint64_t irq_stub_table[32];

void irq_dispatch(uint64_t vector) {
  if (vector < 64 && handlers[vector]) handlers[vector]((uint8_t)vector);
  lapic_eoi();
}

void lapic_eoi(void) { mmio_write32(LAPIC_BASE + LAPIC_EOI, 0); }

void irq_init(void) {
  paging_map_4g();
  uint16_t cs;
  __asm__ volatile("mov %%cs, %0" : "=r"(cs));
  for (int v = 32; v < 64; ++v) {
    uint64_t target = irq_stub_table[v - 32];
    idt[v].offset_low = (uint16_t)target;
    idt[v].selector = cs;
    idt[v].ist = 0;
    idt[v].type_attr = 0x8e; /* present, DPL 0, 64-bit interrupt gate */
    idt[v].offset_mid = (uint16_t)(target >> 16);
    idt[v].offset_high = (uint32_t)(target >> 32);
    idt[v].zero = 0;
  }
  struct __attribute__((packed)) {
    uint16_t limit;
    uint64_t base;
  } idtr = {sizeof idt - 1, (uint64_t)idt};
  __asm__ volatile("lidt %0" ::"m"(idtr));
  /* Mask every 8259 input: the LAPIC's LINT0 is in ExtINT mode. */
  outb(0x21, 0xff);
  outb(0xa1, 0xff);
  mmio_write32(LAPIC_BASE + LAPIC_TPR, 0);
  mmio_write32(LAPIC_BASE + LAPIC_SVR, 0x100 | 0xff); /* APIC software enable, spurious vector 0xff */
}

void irq_set_handler(uint8_t vector, irq_handler handler) {
  if (vector < 64) handlers[vector] = handler;
}

static void ioapic_write(uint32_t reg, uint32_t value) {
  mmio_write32(IOAPIC_BASE, reg);
  mmio_write32(IOAPIC_BASE + 0x10, value);
}

void irq_route_gsi(uint32_t gsi, uint8_t vector) {
  /* Edge-triggered, active high, fixed delivery, physical destination APIC 0, unmasked. */
  ioapic_write(0x11 + 2 * gsi, 0);
  ioapic_write(0x10 + 2 * gsi, vector);
}

void irq_enable(void) { __asm__ volatile("sti" ::: "memory"); }
void irq_disable(void) { __asm__ volatile("cli" ::: "memory"); }
