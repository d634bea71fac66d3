/* Triple-faults on purpose: an empty IDT, then an invalid opcode. #UD cannot
 * be delivered (#GP), nor can that (#DF), so the CPU shuts down. The VMM
 * must report it and exit non-zero promptly. */
#include "payload.h"

void payload_main(void) {
  serial_puts("about to triple fault\n");
  struct __attribute__((packed)) {
    uint16_t limit;
    uint64_t base;
  } idt = {0, 0};
  __asm__ volatile("lidt %0; ud2" ::"m"(idt));
  payload_fail("still running after a triple fault");
}
