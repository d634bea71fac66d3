/* The KVM self-check guest (ember-kvm-check), built with the payload kit: executes what a stock Linux
 * kernel executes early and a software KVM cannot emulate: SSE/SSE2
 * arithmetic, and popcnt and xsave when CPUID advertises them. Prints
 * "EMBER-KVM-CHECK: OK" only if all of them ran. */
#include "payload.h"

int kvm_check_sse(void);
uint64_t kvm_check_popcnt(uint64_t v);
void kvm_check_xsave(void* area);
void kvm_check_enable_sse(void);
void kvm_check_enable_xsave(void);

static uint8_t xsave_area[4096] __attribute__((aligned(64)));

void payload_main(void) {
  uint32_t a, b, c, d;
  __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
  kvm_check_enable_sse();
  if (kvm_check_sse() != 42) payload_fail("SSE arithmetic gave a wrong result");
  serial_puts("sse ok\n");
  if (c & (1u << 23)) {
    if (kvm_check_popcnt(0xf0f0) != 8) payload_fail("popcnt gave a wrong result");
    serial_puts("popcnt ok\n");
  }
  if (c & (1u << 26)) {
    kvm_check_enable_xsave();
    kvm_check_xsave(xsave_area);
    serial_puts("xsave ok\n");
  }
  serial_puts("EMBER-KVM-CHECK: OK\n");
  payload_pass();
}
