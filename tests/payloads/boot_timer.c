/* Signals boot completion to the boot timer device (MMIO 0xC0000000). */
#include "payload.h"

void payload_main(void) {
  serial_puts("signalling the boot timer\n");
  boot_timer_signal();
  payload_pass();
}
