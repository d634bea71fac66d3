/* virtio-blk end to end on ember's KVM path: for every block device on the
 * command line, negotiate features, read the capacity, then read, write,
 * flush, GET_ID and probe error paths, printing what the device returned.
 * The host test prepared the images and compares every number with what is
 * in the files (before and after the run). Written sectors carry the pattern
 * fill_pattern(ember.seed + device index), which the host recomputes.
 *
 * Per device <i>, one line each:
 *   blk<i> capacity=<sectors> seg_max=<n> ro=<0|1> flush=<0|1> features=0x<acked>
 *   blk<i> read sector=0 count=16 status=<s> hash=<hash>        (two 4 KiB descriptors)
 *   blk<i> read sector=<last> count=1 status=<s> hash=<hash>
 *   blk<i> read-past-end status=<s>                            (expects IOERR)
 *   blk<i> write sector=4 count=4 status=<s> hash=<hash of what was sent>
 *   blk<i> readback sector=4 count=4 status=<s> hash=<hash>
 *   blk<i> flush status=<s>                                    (when FLUSH was negotiated)
 *   blk<i> get-id status=<s> used=<len> id=[<text>]
 *   blk<i> unsupported status=<s>                              (expects UNSUPP) */
#include "payload.h"
#include "virtio_blk.h"

/* Page aligned so that 16 sectors are exactly two descriptors. */
static uint8_t buf[16 * VIRTIO_BLK_SECTOR] __attribute__((aligned(4096)));
static uint8_t pattern[4 * VIRTIO_BLK_SECTOR] __attribute__((aligned(4096)));
static struct virtio_blk blk;

static void exercise(unsigned i, uint64_t seed) {
  if (blk_init(&blk, i) != 0) payload_fail("virtio-blk: initialisation failed");
  pl_printf("blk%u capacity=%lu seg_max=%u ro=%d flush=%d features=0x%lx\n", i, blk.capacity,
            blk.seg_max, blk.read_only, blk.flush, blk.dev.features);
  PAYLOAD_CHECK(blk.capacity >= 16);

  fast_fill(buf, 0xa5, sizeof buf);
  int s = blk_read(&blk, 0, buf, sizeof buf);
  pl_printf("blk%u read sector=0 count=16 status=%d hash=%lx\n", i, s, hash64_of(buf, sizeof buf));

  uint64_t last = blk.capacity - 1;
  fast_fill(buf, 0xa5, VIRTIO_BLK_SECTOR);
  s = blk_read(&blk, last, buf, VIRTIO_BLK_SECTOR);
  pl_printf("blk%u read sector=%lu count=1 status=%d hash=%lx\n", i, last, s,
            hash64_of(buf, VIRTIO_BLK_SECTOR));

  s = blk_read(&blk, last, buf, 2 * VIRTIO_BLK_SECTOR);
  pl_printf("blk%u read-past-end status=%d\n", i, s);

  fill_pattern(seed + i, pattern, sizeof pattern);
  s = blk_write(&blk, 4, pattern, sizeof pattern);
  pl_printf("blk%u write sector=4 count=4 status=%d hash=%lx\n", i, s,
            hash64_of(pattern, sizeof pattern));

  fast_fill(buf, 0xa5, sizeof pattern);
  s = blk_read(&blk, 4, buf, sizeof pattern);
  pl_printf("blk%u readback sector=4 count=4 status=%d hash=%lx\n", i, s,
            hash64_of(buf, sizeof pattern));

  if (blk.flush) pl_printf("blk%u flush status=%d\n", i, blk_flush(&blk));

  char id[VIRTIO_BLK_ID_BYTES + 1];
  memset(id, 0, sizeof id);
  uint32_t used = 0;
  s = blk_request(&blk, VIRTIO_BLK_T_GET_ID, 0, id, VIRTIO_BLK_ID_BYTES, &used);
  pl_printf("blk%u get-id status=%d used=%u id=[%s]\n", i, s, used, id);

  s = blk_request(&blk, 99, 0, buf, VIRTIO_BLK_SECTOR, 0);
  pl_printf("blk%u unsupported status=%d\n", i, s);

  virtio_reset(&blk.dev);
}

void payload_main(void) {
  paging_map_4g();
  uint64_t seed = pl_cmdline_u64("ember.seed", 1);
  unsigned n = virtio_count(VIRTIO_ID_BLOCK);
  pl_printf("blk devices=%u\n", n);
  for (unsigned i = 0; i < n; ++i) exercise(i, seed);
  payload_pass();
}
