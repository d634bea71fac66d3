/* The payload kit's C half: console, printing, reset, boot timer, LAPIC/SMP. */
#include "payload.h"

#define COM1 0x3f8
#define LSR_THR_EMPTY 0x20

struct entry_state payload_entry_state;

void* memcpy(void* dst, const void* src, size_t n) {
  uint8_t* d = dst;
  const uint8_t* s = src;
  while (n--) *d++ = *s++;
  return dst;
}

void* memset(void* dst, int c, size_t n) {
  uint8_t* d = dst;
  while (n--) *d++ = (uint8_t)c;
  return dst;
}

int memcmp(const void* a, const void* b, size_t n) {
  const uint8_t *x = a, *y = b;
  for (; n; --n, ++x, ++y) {
    if (*x != *y) return *x - *y;
  }
  return 0;
}

size_t strlen(const char* s) {
  size_t n = 0;
  while (s[n]) ++n;
  return n;
}

int strncmp(const char* a, const char* b, size_t n) {
  for (; n; --n, ++a, ++b) {
    if (*a != *b || !*a) return (uint8_t)*a - (uint8_t)*b;
  }
  return 0;
}

const char* strstr_n(const char* hay, const char* needle) {
  size_t n = strlen(needle);
  for (; *hay; ++hay) {
    if (strncmp(hay, needle, n) == 0) return hay;
  }
  return 0;
}

/* One console writer at a time: APs print too. */
static volatile uint32_t console_lock;

static void lock_console(void) {
  uint32_t one = 1;
  for (;;) {
    uint32_t old = one;
    __asm__ volatile("xchgl %0, %1" : "+r"(old), "+m"(console_lock)::"memory");
    if (old == 0) return;
    while (console_lock) cpu_relax();
  }
}

static void unlock_console(void) {
  barrier();
  console_lock = 0;
}

static void putc_raw(char c) {
  while (!(inb(COM1 + 5) & LSR_THR_EMPTY)) cpu_relax();
  outb(COM1, (uint8_t)c);
}

void serial_putc(char c) {
  lock_console();
  putc_raw(c);
  unlock_console();
}

void serial_puts(const char* s) {
  lock_console();
  while (*s) putc_raw(*s++);
  unlock_console();
}

static void put_unsigned(uint64_t v, unsigned base, int min_digits) {
  char buf[24];
  int n = 0;
  do {
    unsigned d = (unsigned)(v % base);
    buf[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
    v /= base;
  } while (v);
  while (n < min_digits) buf[n++] = '0';
  while (n) putc_raw(buf[--n]);
}

/* %s %c %d %u %x %lx %lu %ld %p, with an optional 0-padded width (%08x). */
void pl_vprintf(const char* fmt, va_list ap) {
  lock_console();
  for (; *fmt; ++fmt) {
    if (*fmt != '%') {
      putc_raw(*fmt);
      continue;
    }
    ++fmt;
    int width = 0;
    if (*fmt == '0') ++fmt;
    while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (*fmt++ - '0');
    int is_long = 0;
    while (*fmt == 'l') {
      is_long = 1;
      ++fmt;
    }
    switch (*fmt) {
      case 's': {
        const char* s = va_arg(ap, const char*);
        while (s && *s) putc_raw(*s++);
        break;
      }
      case 'c':
        putc_raw((char)va_arg(ap, int));
        break;
      case 'd': {
        int64_t v = is_long ? va_arg(ap, int64_t) : va_arg(ap, int);
        if (v < 0) {
          putc_raw('-');
          v = -v;
        }
        put_unsigned((uint64_t)v, 10, width);
        break;
      }
      case 'u':
        put_unsigned(is_long ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 10, width);
        break;
      case 'x':
        put_unsigned(is_long ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 16, width);
        break;
      case 'p':
        putc_raw('0');
        putc_raw('x');
        put_unsigned((uint64_t)va_arg(ap, void*), 16, 0);
        break;
      case '%':
        putc_raw('%');
        break;
      default:
        putc_raw('?');
        break;
    }
  }
  unlock_console();
}

void pl_printf(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  pl_vprintf(fmt, ap);
  va_end(ap);
}

void i8042_reset(void) {
  outb(0x64, 0xfe);
  for (;;) __asm__ volatile("cli; hlt");
}

void payload_pass(void) {
  serial_puts("EMBER-PAYLOAD: PASS\n");
  i8042_reset();
}

void payload_fail(const char* why) {
  pl_printf("EMBER-PAYLOAD: FAIL %s\n", why);
  i8042_reset();
}

void boot_timer_signal(void) {
  paging_map_4g();
  mmio_write8(0xc0000000, 123);
}

/* Local APIC registers (Intel SDM vol. 3A table 10-1). */
#define LAPIC_BASE 0xfee00000ULL
#define LAPIC_ID 0x20
#define LAPIC_ICR_LOW 0x300
#define LAPIC_ICR_HIGH 0x310
#define ICR_DELIVERY_PENDING (1u << 12)
#define ICR_INIT 0x00004500u   /* INIT, level assert */
#define ICR_STARTUP 0x00004600u /* Start-up IPI */

uint32_t lapic_id(void) { return mmio_read32(LAPIC_BASE + LAPIC_ID) >> 24; }

static void lapic_send_ipi(uint32_t apic_id, uint32_t icr) {
  mmio_write32(LAPIC_BASE + LAPIC_ICR_HIGH, apic_id << 24);
  mmio_write32(LAPIC_BASE + LAPIC_ICR_LOW, icr);
  while (mmio_read32(LAPIC_BASE + LAPIC_ICR_LOW) & ICR_DELIVERY_PENDING) cpu_relax();
}

/* smp_trampoline.S, copied to TRAMPOLINE_BASE (a 4 KiB page below 1 MiB). */
#define TRAMPOLINE_BASE 0x30000
extern char smp_trampoline_start[], smp_trampoline_end[];
extern char smp_trampoline_cr3[], smp_trampoline_stack[], smp_trampoline_entry[];

void smp_start_ap(uint32_t apic_id, void (*entry)(void), void* stack_top) {
  uint8_t* page = (uint8_t*)TRAMPOLINE_BASE;
  memcpy(page, smp_trampoline_start, (size_t)(smp_trampoline_end - smp_trampoline_start));
  uint32_t cr3 = (uint32_t)paging_4g_root();
  uint64_t stack = (uint64_t)stack_top;
  uint64_t target = (uint64_t)entry;
  memcpy(page + (smp_trampoline_cr3 - smp_trampoline_start), &cr3, 4);
  memcpy(page + (smp_trampoline_stack - smp_trampoline_start), &stack, 8);
  memcpy(page + (smp_trampoline_entry - smp_trampoline_start), &target, 8);
  barrier();
  lapic_send_ipi(apic_id, ICR_INIT);
  /* The start-up vector is the page number of the trampoline. */
  lapic_send_ipi(apic_id, ICR_STARTUP | (TRAMPOLINE_BASE >> 12));
  lapic_send_ipi(apic_id, ICR_STARTUP | (TRAMPOLINE_BASE >> 12));
}
