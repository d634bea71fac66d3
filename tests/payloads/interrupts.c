/* Interrupts end to end: irqfd -> in-kernel IOAPIC -> LAPIC -> guest IDT.
 *  - serial (GSI 4): enabling the THR-empty interrupt raises it at once;
 *  - i8042 (GSI 1): the test injects Ctrl+Alt+Del; the handler reads the
 *    scan codes (one interrupt per byte);
 *  - virtio-mmio (GSI 5), when a device is announced: a used-ring interrupt
 *    after a queue round trip with the test's echo device. */
#include "payload.h"

#define VEC_I8042 0x21
#define VEC_SERIAL 0x24
#define VEC_VIRTIO 0x25

static volatile uint32_t serial_irqs, keyboard_irqs, virtio_irqs;
static volatile uint8_t scancodes[16];
static volatile uint32_t scancode_count;
static uint64_t virtio_base;

static void on_serial(uint8_t v) {
  (void)v;
  (void)inb(0x3f8 + 2); /* reading IIR acknowledges THR empty */
  ++serial_irqs;
}

static void on_keyboard(uint8_t v) {
  (void)v;
  while (inb(0x64) & 1) {
    uint8_t code = inb(0x60);
    if (scancode_count < sizeof scancodes) scancodes[scancode_count++] = code;
  }
  ++keyboard_irqs;
}

static void on_virtio(uint8_t v) {
  (void)v;
  uint32_t isr = mmio_read32(virtio_base + 0x060);
  mmio_write32(virtio_base + 0x064, isr);
  ++virtio_irqs;
}

static int wait_for(volatile uint32_t* counter, uint32_t at_least) {
  for (uint64_t spins = 0; *counter < at_least; ++spins) {
    if (spins > 300000000ULL) return 0;
    cpu_relax();
  }
  return 1;
}

/* The echo round trip from virtio_probe.c, reduced to what this test needs. */
struct desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags, next;
};
static struct desc ring_desc[8] __attribute__((aligned(16)));
static struct {
  uint16_t flags, idx, ring[8];
} ring_avail __attribute__((aligned(2)));
static struct {
  uint16_t flags, idx;
  struct {
    uint32_t id, len;
  } ring[8];
} ring_used __attribute__((aligned(4)));
static char req[8] = "irq", resp[32];

static void virtio_kick(uint64_t b) {
  mmio_write32(b + 0x070, 0);
  mmio_write32(b + 0x070, 1);
  mmio_write32(b + 0x070, 3);
  mmio_write32(b + 0x024, 1);
  mmio_write32(b + 0x020, 1); /* VIRTIO_F_VERSION_1 */
  mmio_write32(b + 0x070, 11);
  mmio_write32(b + 0x030, 0);
  mmio_write32(b + 0x038, 8);
  mmio_write32(b + 0x080, (uint32_t)(uint64_t)ring_desc);
  mmio_write32(b + 0x090, (uint32_t)(uint64_t)&ring_avail);
  mmio_write32(b + 0x0a0, (uint32_t)(uint64_t)&ring_used);
  mmio_write32(b + 0x044, 1);
  mmio_write32(b + 0x070, 15);
  ring_desc[0] = (struct desc){(uint64_t)req, 3, 1, 1};
  ring_desc[1] = (struct desc){(uint64_t)resp, sizeof resp, 2, 0};
  ring_avail.ring[0] = 0;
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  ring_avail.idx = 1;
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  mmio_write32(b + 0x050, 0);
}

void payload_main(void) {
  irq_init();
  irq_set_handler(VEC_SERIAL, on_serial);
  irq_set_handler(VEC_I8042, on_keyboard);
  irq_set_handler(VEC_VIRTIO, on_virtio);
  irq_route_gsi(4, VEC_SERIAL);
  irq_route_gsi(1, VEC_I8042);
  irq_route_gsi(5, VEC_VIRTIO);
  irq_enable();

  outb(0x3f8 + 1, 0x02); /* IER: THR empty */
  if (!wait_for(&serial_irqs, 1)) payload_fail("no serial interrupt");
  outb(0x3f8 + 1, 0x00);
  pl_printf("serial interrupts=%u\n", serial_irqs);

  const char* cmdline = (const char*)(uint64_t) * (volatile uint32_t*)(payload_entry_state.rsi + 0x228);
  if (strstr_n(cmdline, "virtio_mmio.device=4K@0xc0001000:5")) {
    virtio_base = 0xc0001000;
    virtio_kick(virtio_base);
    if (!wait_for(&virtio_irqs, 1)) payload_fail("no virtio interrupt");
    pl_printf("virtio interrupts=%u used=%u response=[%s]\n", virtio_irqs, ring_used.idx, resp);
  }

  serial_puts("waiting for ctrl-alt-del\n");
  if (!wait_for(&scancode_count, 4)) payload_fail("no keyboard interrupt");
  pl_printf("keyboard interrupts=%u scancodes=%x %x %x %x\n", keyboard_irqs, scancodes[0], scancodes[1],
            scancodes[2], scancodes[3]);
  irq_disable();
  payload_pass();
}
