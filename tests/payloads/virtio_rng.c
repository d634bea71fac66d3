/* virtio-rng end to end on ember's KVM path: two 64-byte requests and one
 * 4 KiB request split over two descriptors; prints the bytes (hex) of the
 * small ones and statistics of the large one for the host test to judge.
 *   rng read<n> status=<0|-1> len=<used> bytes=<hex>
 *   rng large status=<0|-1> len=<used> distinct=<byte values seen> zeros=<count>
 *   rng interrupt_status=0x<isr> */
#include "payload.h"
#include "virtio.h"

static uint8_t small[2][64] __attribute__((aligned(64)));
/* 4 KiB that start mid-page: two descriptors. */
static struct {
  uint8_t before[2048];
  uint8_t data[4096];
} lp __attribute__((aligned(4096)));
#define large lp.data
static struct virtio_dev dev;
static struct virtq q;

static void print_hex(const uint8_t* b, size_t n) {
  for (size_t i = 0; i < n; ++i) pl_printf("%02x", b[i]);
}

void payload_main(void) {
  paging_map_4g();
  if (virtio_find(VIRTIO_ID_RNG, 0, &dev) != 0) payload_fail("no virtio-rng device");
  if (virtio_init(&dev, 0) != 0) payload_fail("virtio-rng: feature negotiation failed");
  if (virtq_setup(&dev, &q, 0, 8) != 0) payload_fail("virtio-rng: queue set-up failed");
  virtio_driver_ok(&dev);
  pl_printf("rng features=0x%lx\n", dev.features);

  for (int r = 0; r < 2; ++r) {
    struct virtq_buf b = {small[r], sizeof small[r], 1};
    int64_t used = virtq_exchange(&q, &b, 1);
    pl_printf("rng read%d status=%d len=%ld bytes=", r + 1, used < 0 ? -1 : 0, used);
    print_hex(small[r], sizeof small[r]);
    pl_printf("\n");
  }

  uint32_t offset_in_page = (uint32_t)((uint64_t)large % 4096);
  uint32_t first = 4096 - offset_in_page;
  struct virtq_buf two[2] = {{large, first, 1}, {large + first, sizeof large - first, 1}};
  int64_t used = virtq_exchange(&q, two, 2);
  uint8_t seen[256];
  memset(seen, 0, sizeof seen);
  unsigned distinct = 0, zeros = 0;
  for (size_t i = 0; i < sizeof large; ++i) {
    if (!seen[large[i]]) {
      seen[large[i]] = 1;
      ++distinct;
    }
    if (large[i] == 0) ++zeros;
  }
  pl_printf("rng large status=%d len=%ld distinct=%u zeros=%u\n", used < 0 ? -1 : 0, used, distinct,
            zeros);
  pl_printf("rng interrupt_status=0x%x\n", virtio_ack_interrupt(&dev));
  virtio_reset(&dev);
  payload_pass();
}
