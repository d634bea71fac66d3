/* A minimal polling virtio driver for payload guests: the virtio-mmio
 * version 2 ("modern") transport (virtio 1.2 §4.2), device initialisation
 * (§3.1.1), and split virtqueues (§2.7) laid out in payload memory.
 * Interrupts stay off: completions are found by polling the used ring.
 *
 * The device is untrusted here too: a used element that names a descriptor
 * the driver never posted, or a length larger than what was posted, ends the
 * run with payload_fail(), so a misbehaving device fails its test.
 *
 * Devices are found the way Linux finds them on ember: from
 * "virtio_mmio.device=4K@0x<base>:<gsi>" on the kernel command line. Call
 * paging_map_4g() first (the windows are at 0xC0001000 and up). */
#ifndef EMBER_PAYLOAD_VIRTIO_H
#define EMBER_PAYLOAD_VIRTIO_H

#include "payload.h"

/* MMIO register layout (virtio 1.2 §4.2.2). */
#define VIRTIO_MMIO_MAGIC 0x000
#define VIRTIO_MMIO_VERSION 0x004
#define VIRTIO_MMIO_DEVICE_ID 0x008
#define VIRTIO_MMIO_VENDOR_ID 0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES 0x010
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL 0x014
#define VIRTIO_MMIO_DRIVER_FEATURES 0x020
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL 0x024
#define VIRTIO_MMIO_QUEUE_SEL 0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX 0x034
#define VIRTIO_MMIO_QUEUE_NUM 0x038
#define VIRTIO_MMIO_QUEUE_READY 0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY 0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS 0x060
#define VIRTIO_MMIO_INTERRUPT_ACK 0x064
#define VIRTIO_MMIO_STATUS 0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW 0x080
#define VIRTIO_MMIO_QUEUE_DESC_HIGH 0x084
#define VIRTIO_MMIO_QUEUE_DRIVER_LOW 0x090
#define VIRTIO_MMIO_QUEUE_DRIVER_HIGH 0x094
#define VIRTIO_MMIO_QUEUE_DEVICE_LOW 0x0a0
#define VIRTIO_MMIO_QUEUE_DEVICE_HIGH 0x0a4
#define VIRTIO_MMIO_CONFIG_GENERATION 0x0fc
#define VIRTIO_MMIO_CONFIG 0x100

#define VIRTIO_MMIO_MAGIC_VALUE 0x74726976u /* "virt" */

/* Device status (virtio 1.2 §2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE 1u
#define VIRTIO_STATUS_DRIVER 2u
#define VIRTIO_STATUS_DRIVER_OK 4u
#define VIRTIO_STATUS_FEATURES_OK 8u
#define VIRTIO_STATUS_NEEDS_RESET 64u
#define VIRTIO_STATUS_FAILED 128u

/* Device IDs (virtio 1.2 §5). */
#define VIRTIO_ID_NET 1u
#define VIRTIO_ID_BLOCK 2u
#define VIRTIO_ID_RNG 4u
#define VIRTIO_ID_VSOCK 19u

#define VIRTIO_F_VERSION_1 (1ULL << 32)

/* Split virtqueue (virtio 1.2 §2.7). */
#define VIRTQ_DESC_F_NEXT 1u
#define VIRTQ_DESC_F_WRITE 2u
#define VIRTQ_USED_F_NO_NOTIFY 1u
#define VIRTQ_MAX_SIZE 64u

struct virtq_desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};

struct virtq_used_elem {
  uint32_t id;
  uint32_t len;
};

/* How long a driver waits for the device, in TSC cycles: about 8 s at
 * 3 GHz. The guest cannot learn the TSC rate here (CPUID 0x15/0x16 are
 * empty), so this is approximate; the host test's own timeout is longer. */
#define VIRTIO_TIMEOUT_CYCLES 24000000000ULL

static inline uint64_t pl_rdtsc(void) {
  uint32_t lo, hi;
  __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return ((uint64_t)hi << 32) | lo;
}
static inline uint64_t virtio_deadline(void) { return pl_rdtsc() + VIRTIO_TIMEOUT_CYCLES; }
static inline int virtio_expired(uint64_t deadline) { return pl_rdtsc() > deadline; }

struct virtio_dev {
  uint64_t base;
  uint32_t gsi;
  uint32_t device_id;
  uint64_t device_features; /* what the device offers */
  uint64_t features;        /* what was negotiated */
};

struct virtq {
  struct virtio_dev* dev;
  uint16_t index;
  uint16_t size;
  struct virtq_desc* desc;
  volatile uint16_t* avail; /* flags, idx, ring[size], used_event */
  volatile uint16_t* used;  /* flags, idx, then virtq_used_elem ring[size] */
  uint16_t free_head;
  uint16_t num_free;
  uint16_t avail_idx;                  /* next avail index the driver publishes */
  uint16_t last_used;                  /* next used index the driver consumes */
  uint32_t posted_len[VIRTQ_MAX_SIZE]; /* device-writable bytes per posted head */
  uint8_t in_flight[VIRTQ_MAX_SIZE];
};

/* One buffer of a chain: device-readable, or device-writable if `write`. */
struct virtq_buf {
  void* addr;
  uint32_t len;
  int write;
};

/* Kernel command line helpers ("key=value" words). */
const char* pl_cmdline(void);
/* The value of `key=` as a number (decimal, or hex with 0x), `fallback` if absent. */
uint64_t pl_cmdline_u64(const char* key, uint64_t fallback);

/* Bulk copies and fills with rep movsq / rep stosq. The software KVM of the
 * CI machines runs a guest at roughly a million instructions per second, so
 * a byte loop over 100 KiB costs about half a second; a string instruction
 * moves 8 bytes per step at the same price. */
void fast_copy(void* dst, const void* src, size_t len);
void fast_fill(void* dst, uint8_t value, size_t len);

/* The test hash, shared with the host tests: the byte stream is cut into
 * 8-byte little-endian words (the last one zero-padded), each mixed in with
 *   h ^= w; h *= 0x100000001b3; h ^= h >> 29;
 * starting from h = 0xcbf29ce484222325, and the total length mixed in last.
 * The result does not depend on how the stream is split into updates. */
struct hash64 {
  uint64_t h;
  uint64_t pending;
  uint32_t npending;
  uint64_t total;
};
void hash64_init(struct hash64* s);
void hash64_update(struct hash64* s, const void* data, size_t len);
uint64_t hash64_final(const struct hash64* s);
uint64_t hash64_of(const void* data, size_t len);

/* Deterministic test pattern shared with the host tests: one xorshift64 step
 * (<<13, >>7, <<17) per 8 bytes, stored little-endian, seeded with `seed`
 * (0 means 0x9e3779b97f4a7c15). */
void fill_pattern(uint64_t seed, void* data, size_t len);

/* Zeroed memory from a static pool (never freed); fails the run when empty. */
void* virtio_alloc(size_t size, size_t align);

/* Number of devices with `device_id` announced on the command line. */
unsigned virtio_count(uint32_t device_id);
/* Finds the `nth` (from 0) device with `device_id`; 0 on success. Checks the
 * magic value and version 2. */
int virtio_find(uint32_t device_id, unsigned nth, struct virtio_dev* dev);

/* virtio 1.2 §3.1.1 steps 1-6: reset, ACKNOWLEDGE, DRIVER, accept
 * (offered & wanted) | VERSION_1, FEATURES_OK and check that it stuck.
 * Returns 0, or -1 if the device refused the features. */
int virtio_init(struct virtio_dev* dev, uint64_t wanted);
/* Step 8: DRIVER_OK (after the queues are set up). */
void virtio_driver_ok(struct virtio_dev* dev);
void virtio_reset(struct virtio_dev* dev);
uint32_t virtio_status(const struct virtio_dev* dev);
/* Reads and acknowledges the interrupt status; returns what was pending. */
uint32_t virtio_ack_interrupt(const struct virtio_dev* dev);

/* Device config space, read consistently against ConfigGeneration (§4.2.2.2). */
uint8_t virtio_config8(const struct virtio_dev* dev, uint32_t offset);
uint32_t virtio_config32(const struct virtio_dev* dev, uint32_t offset);
uint64_t virtio_config64(const struct virtio_dev* dev, uint32_t offset);

/* Step 7 for one queue: allocates its rings (size <= QueueNumMax and
 * VIRTQ_MAX_SIZE, a power of two) and makes it ready. 0 on success. */
int virtq_setup(struct virtio_dev* dev, struct virtq* q, uint16_t index, uint16_t size);
/* Posts one chain made of `n` buffers (readable ones first); returns its
 * head descriptor, or -1 if the ring has too few free descriptors. Does not
 * notify. */
int virtq_add(struct virtq* q, const struct virtq_buf* bufs, unsigned n);
/* Notifies the device of new buffers (QueueNotify). */
void virtq_kick(struct virtq* q);
/* The next used element: returns its head and sets *len (bytes the device
 * wrote), or -1 if the device has used nothing new. Frees the chain. */
int virtq_get(struct virtq* q, uint32_t* len);
/* virtq_add + kick + wait for that chain. Returns the used length, or -1 if
 * the device did not use it before VIRTIO_TIMEOUT_CYCLES passed (or used
 * another chain). */
int64_t virtq_exchange(struct virtq* q, const struct virtq_buf* bufs, unsigned n);

#endif
