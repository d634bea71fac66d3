/* virtio-blk driver for payloads (virtio 1.2 §5.2) on top of virtio.h: one
 * request queue, requests posted as header / data / status chains and
 * waited for by polling. */
#ifndef EMBER_PAYLOAD_VIRTIO_BLK_H
#define EMBER_PAYLOAD_VIRTIO_BLK_H

#include "virtio.h"

/* Feature bits (virtio 1.2 §5.2.3). */
#define VIRTIO_BLK_F_SEG_MAX (1ULL << 2)
#define VIRTIO_BLK_F_RO (1ULL << 5)
#define VIRTIO_BLK_F_FLUSH (1ULL << 9)

/* Request types and status values (§5.2.6). */
#define VIRTIO_BLK_T_IN 0u
#define VIRTIO_BLK_T_OUT 1u
#define VIRTIO_BLK_T_FLUSH 4u
#define VIRTIO_BLK_T_GET_ID 8u
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2

#define VIRTIO_BLK_SECTOR 512u
#define VIRTIO_BLK_ID_BYTES 20u

struct virtio_blk {
  struct virtio_dev dev;
  struct virtq q;
  uint64_t capacity; /* in 512-byte sectors */
  uint32_t seg_max;
  int read_only;   /* VIRTIO_BLK_F_RO negotiated */
  int flush;       /* VIRTIO_BLK_F_FLUSH negotiated */
  uint8_t* header; /* 16 bytes */
  volatile uint8_t* status;
};

/* Finds and initialises the `nth` block device, accepting RO, FLUSH and
 * SEG_MAX when offered. 0 on success. */
int blk_init(struct virtio_blk* b, unsigned nth);

/* One request: `len` bytes of `data` (written to the device for OUT,
 * filled by it for IN and GET_ID; none for FLUSH), split into one
 * descriptor per 4 KiB page of the buffer. Returns the status byte the
 * device wrote, or -1 if the device did not complete the request; *used_len
 * (optional) gets the length the device reported. */
int blk_request(struct virtio_blk* b, uint32_t type, uint64_t sector, void* data, uint32_t len,
                uint32_t* used_len);

static inline int blk_read(struct virtio_blk* b, uint64_t sector, void* data, uint32_t len) {
  return blk_request(b, VIRTIO_BLK_T_IN, sector, data, len, 0);
}
static inline int blk_write(struct virtio_blk* b, uint64_t sector, void* data, uint32_t len) {
  return blk_request(b, VIRTIO_BLK_T_OUT, sector, data, len, 0);
}
static inline int blk_flush(struct virtio_blk* b) {
  return blk_request(b, VIRTIO_BLK_T_FLUSH, 0, 0, 0, 0);
}

#endif
