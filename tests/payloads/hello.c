/* The smallest payload: one line on the console, then reset. */
#include "payload.h"

void payload_main(void) {
  serial_puts("hello from an ember payload\n");
  payload_pass();
}
