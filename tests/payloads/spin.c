/* Says it is running, then spins forever: for stop, pause and resume tests. */
#include "payload.h"

volatile uint64_t spin_counter;

void payload_main(void) {
  serial_puts("spinning\n");
  for (;;) {
    ++spin_counter;
    cpu_relax();
  }
}
