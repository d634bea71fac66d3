/* virtio-blk driver for payloads (see virtio_blk.h). */
#include "virtio_blk.h"

#define BLK_QUEUE_SIZE 16
#define PAGE 4096u

int blk_init(struct virtio_blk* b, unsigned nth) {
  memset(b, 0, sizeof *b);
  if (virtio_find(VIRTIO_ID_BLOCK, nth, &b->dev) != 0) return -1;
  if (virtio_init(&b->dev, VIRTIO_BLK_F_RO | VIRTIO_BLK_F_FLUSH | VIRTIO_BLK_F_SEG_MAX) != 0)
    return -1;
  if (virtq_setup(&b->dev, &b->q, 0, BLK_QUEUE_SIZE) != 0) return -1;
  virtio_driver_ok(&b->dev);
  /* §5.2.4: capacity (le64) at 0, size_max (le32) at 8, seg_max (le32) at 12. */
  b->capacity = virtio_config64(&b->dev, 0);
  b->seg_max = (b->dev.features & VIRTIO_BLK_F_SEG_MAX) ? virtio_config32(&b->dev, 12) : 1;
  b->read_only = (b->dev.features & VIRTIO_BLK_F_RO) != 0;
  b->flush = (b->dev.features & VIRTIO_BLK_F_FLUSH) != 0;
  b->header = virtio_alloc(16, 16);
  b->status = virtio_alloc(1, 1);
  return 0;
}

int blk_request(struct virtio_blk* b, uint32_t type, uint64_t sector, void* data, uint32_t len,
                uint32_t* used_len) {
  /* §5.2.6: struct virtio_blk_req { le32 type; le32 reserved; le64 sector; } */
  memset(b->header, 0, 16);
  memcpy(b->header, &type, 4);
  memcpy(b->header + 8, &sector, 8);
  *b->status = 0xff; /* a device that never writes the status is caught */
  struct virtq_buf bufs[BLK_QUEUE_SIZE];
  unsigned n = 0;
  bufs[n++] = (struct virtq_buf){b->header, 16, 0};
  int device_writes = type != VIRTIO_BLK_T_OUT;
  uint8_t* p = data;
  uint32_t left = len;
  while (left) {
    uint32_t in_page = PAGE - (uint32_t)((uint64_t)p % PAGE);
    uint32_t chunk = left < in_page ? left : in_page;
    if (n + 1 >= BLK_QUEUE_SIZE) payload_fail("blk_request: buffer spans too many pages");
    bufs[n++] = (struct virtq_buf){p, chunk, device_writes};
    p += chunk;
    left -= chunk;
  }
  bufs[n++] = (struct virtq_buf){(void*)b->status, 1, 1};
  int64_t used = virtq_exchange(&b->q, bufs, n);
  if (used < 0) return -1;
  if (used_len) *used_len = (uint32_t)used;
  return *b->status;
}
