/* Payload guest kit: what a freestanding test guest needs to talk to ember's
 * machine. Payloads are 64-bit C, built without SSE/x87 and checked for
 * instructions the software KVM on CI cannot emulate (see ../CMakeLists.txt).
 *
 * Entry: crt0.S (64-bit Linux boot protocol) or pvh_entry.S (PVH) calls
 *   void payload_main(void);
 * Reporting: print lines on the serial console; end with payload_pass() or
 * payload_fail(), which print "EMBER-PAYLOAD: PASS|FAIL <why>" and reset the
 * VM through the i8042 (ember-vmm then exits 0). Tests read the console. */
#ifndef EMBER_PAYLOAD_H
#define EMBER_PAYLOAD_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* Register state at entry, captured by the entry code before anything else. */
struct entry_state {
  uint64_t rsi, rbx, rsp, rbp, rflags;
  uint64_t cr0, cr3, cr4, efer;
  uint16_t cs, ds, ss;
  int pvh; /* entered through the PVH note */
};
extern struct entry_state payload_entry_state;

void payload_main(void);

/* Port I/O. */
static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) {
  uint8_t v;
  __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}

/* MMIO (identity mapped; above 1 GiB call paging_map_4g() first). */
static inline void mmio_write8(uint64_t a, uint8_t v) { *(volatile uint8_t*)a = v; }
static inline void mmio_write32(uint64_t a, uint32_t v) { *(volatile uint32_t*)a = v; }
static inline uint8_t mmio_read8(uint64_t a) { return *(volatile uint8_t*)a; }
static inline uint32_t mmio_read32(uint64_t a) { return *(volatile uint32_t*)a; }

static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }
static inline void barrier(void) { __asm__ volatile("" ::: "memory"); }

/* Serial console (COM1, polled). */
void serial_putc(char c);
void serial_puts(const char* s);
void pl_printf(const char* fmt, ...);
void pl_vprintf(const char* fmt, va_list ap);

/* Ends the run: reports and resets through the i8042 (port 0x64, 0xFE). */
__attribute__((noreturn)) void payload_pass(void);
__attribute__((noreturn)) void payload_fail(const char* why);
__attribute__((noreturn)) void i8042_reset(void);
#define PAYLOAD_CHECK(cond)                                     \
  do {                                                          \
    if (!(cond)) payload_fail("check failed: " #cond);          \
  } while (0)

/* Boot timer: the 1-byte write of 123 at 0xC0000000 (maps 4 GiB first). */
void boot_timer_signal(void);

/* Loads the kit's page tables: identity map of [0, 4 GiB) with 2 MiB pages,
 * so the MMIO hole (virtio-mmio, IOAPIC, LAPIC) is reachable. */
void paging_map_4g(void);
uint64_t paging_4g_root(void);

/* The Linux boot protocol's zero page (boot_params), by offset. */
#define ZP_E820_ENTRIES 0x1e8
#define ZP_BOOT_FLAG 0x1fe
#define ZP_HEADER 0x202
#define ZP_TYPE_OF_LOADER 0x210
#define ZP_RAMDISK_IMAGE 0x218
#define ZP_RAMDISK_SIZE 0x21c
#define ZP_CMD_LINE_PTR 0x228
#define ZP_KERNEL_ALIGNMENT 0x230
#define ZP_CMDLINE_SIZE 0x238
#define ZP_E820_TABLE 0x2d0

/* Local APIC (xAPIC MMIO at 0xFEE00000) and SMP bring-up. */
uint32_t lapic_id(void);
/* Starts the AP with APIC ID `apic_id` at `entry` on its own stack with
 * INIT + SIPI (Intel SDM vol. 3A §8.4.4). Needs paging_map_4g(). */
void smp_start_ap(uint32_t apic_id, void (*entry)(void), void* stack_top);

/* Interrupts: IDT vectors 0x20-0x3f, LAPIC on, PIC masked (needs nothing
 * else: irq_init() maps the 4 GiB itself). Handlers run with interrupts
 * off; the EOI is sent after they return. */
typedef void (*irq_handler)(uint8_t vector);
void irq_init(void);
void irq_set_handler(uint8_t vector, irq_handler handler);
/* IOAPIC pin `gsi` -> `vector` on APIC 0, edge-triggered, unmasked. */
void irq_route_gsi(uint32_t gsi, uint8_t vector);
void irq_enable(void);
void irq_disable(void);
void lapic_eoi(void);

/* Small helpers. */
void* memcpy(void* dst, const void* src, size_t n);
void* memset(void* dst, int c, size_t n);
int memcmp(const void* a, const void* b, size_t n);
size_t strlen(const char* s);
int strncmp(const char* a, const char* b, size_t n);
const char* strstr_n(const char* hay, const char* needle);

#endif
