/* The polling virtio-mmio driver of the payload kit (see virtio.h). */
#include "virtio.h"

/* Rings, request buffers and connection state of every device a payload
 * drives; payloads load at 1 MiB and guests have at least 128 MiB. */
#define POOL_SIZE (1024 * 1024)
static uint8_t pool[POOL_SIZE] __attribute__((aligned(4096)));
static size_t pool_used;

static void mb(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

void* virtio_alloc(size_t size, size_t align) {
  size_t at = (pool_used + align - 1) & ~(align - 1);
  if (at > POOL_SIZE || size > POOL_SIZE - at) payload_fail("virtio_alloc: pool exhausted");
  pool_used = at + size;
  fast_fill(pool + at, 0, size);
  return pool + at;
}

const char* pl_cmdline(void) {
  uint32_t ptr = *(volatile uint32_t*)(payload_entry_state.rsi + ZP_CMD_LINE_PTR);
  return (const char*)(uint64_t)ptr;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n'; }

static int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Parses a number at `s` (decimal, or hex after 0x); sets *end after it. */
static uint64_t parse_number(const char* s, const char** end) {
  uint64_t v = 0;
  if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    s += 2;
    for (int d; (d = hex_digit(*s)) >= 0; ++s) v = v * 16 + (uint64_t)d;
  } else {
    for (; *s >= '0' && *s <= '9'; ++s) v = v * 10 + (uint64_t)(*s - '0');
  }
  *end = s;
  return v;
}

uint64_t pl_cmdline_u64(const char* key, uint64_t fallback) {
  const char* line = pl_cmdline();
  size_t n = strlen(key);
  for (const char* p = strstr_n(line, key); p; p = strstr_n(p + 1, key)) {
    if ((p == line || is_space(p[-1])) && p[n] == '=') {
      const char* end;
      return parse_number(p + n + 1, &end);
    }
  }
  return fallback;
}

typedef uint64_t unaligned_u64 __attribute__((aligned(1), may_alias));

void fast_copy(void* dst, const void* src, size_t len) {
  size_t words = len / 8, rest = len % 8;
  __asm__ volatile("rep movsq" : "+D"(dst), "+S"(src), "+c"(words)::"memory");
  __asm__ volatile("rep movsb" : "+D"(dst), "+S"(src), "+c"(rest)::"memory");
}

void fast_fill(void* dst, uint8_t value, size_t len) {
  size_t words = len / 8, rest = len % 8;
  uint64_t v = value * 0x0101010101010101ULL;
  __asm__ volatile("rep stosq" : "+D"(dst), "+c"(words) : "a"(v) : "memory");
  __asm__ volatile("rep stosb" : "+D"(dst), "+c"(rest) : "a"(v) : "memory");
}

static uint64_t mix(uint64_t h, uint64_t w) {
  h ^= w;
  h *= 0x100000001b3ULL;
  return h ^ (h >> 29);
}

void hash64_init(struct hash64* s) {
  s->h = 0xcbf29ce484222325ULL;
  s->pending = 0;
  s->npending = 0;
  s->total = 0;
}

void hash64_update(struct hash64* s, const void* data, size_t len) {
  const uint8_t* b = data;
  s->total += len;
  while (s->npending && len) {
    s->pending |= (uint64_t)*b++ << (8 * s->npending);
    --len;
    if (++s->npending == 8) {
      s->h = mix(s->h, s->pending);
      s->pending = 0;
      s->npending = 0;
    }
  }
  uint64_t h = s->h;
  for (; len >= 8; len -= 8, b += 8) h = mix(h, *(const unaligned_u64*)b);
  s->h = h;
  for (; len; --len) s->pending |= (uint64_t)*b++ << (8 * s->npending++);
}

uint64_t hash64_final(const struct hash64* s) {
  uint64_t h = s->h;
  if (s->npending) h = mix(h, s->pending);
  return mix(h, s->total);
}

uint64_t hash64_of(const void* data, size_t len) {
  struct hash64 s;
  hash64_init(&s);
  hash64_update(&s, data, len);
  return hash64_final(&s);
}

void fill_pattern(uint64_t seed, void* data, size_t len) {
  uint8_t* b = data;
  uint64_t x = seed ? seed : 0x9e3779b97f4a7c15ULL;
  for (; len >= 8; len -= 8, b += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *(unaligned_u64*)b = x;
  }
  if (len) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    for (size_t i = 0; i < len; ++i) b[i] = (uint8_t)(x >> (8 * i));
  }
}

/* Walks the "virtio_mmio.device=<size>@0x<base>:<gsi>" words in order. */
static int nth_device(uint32_t device_id, unsigned nth, struct virtio_dev* dev) {
  static const char key[] = "virtio_mmio.device=";
  const char* line = pl_cmdline();
  unsigned seen = 0;
  for (const char* p = strstr_n(line, key); p; p = strstr_n(p + 1, key)) {
    const char* at = p + sizeof key - 1;
    while (*at && *at != '@' && !is_space(*at)) ++at;
    if (*at != '@') continue;
    const char* end;
    uint64_t base = parse_number(at + 1, &end);
    uint32_t gsi = 0;
    if (*end == ':') gsi = (uint32_t)parse_number(end + 1, &end);
    if (mmio_read32(base + VIRTIO_MMIO_DEVICE_ID) != device_id) continue;
    if (seen++ != nth) continue;
    if (dev) {
      dev->base = base;
      dev->gsi = gsi;
      dev->device_id = device_id;
      dev->device_features = 0;
      dev->features = 0;
    }
    return 0;
  }
  return -1;
}

unsigned virtio_count(uint32_t device_id) {
  unsigned n = 0;
  while (nth_device(device_id, n, 0) == 0) ++n;
  return n;
}

int virtio_find(uint32_t device_id, unsigned nth, struct virtio_dev* dev) {
  if (nth_device(device_id, nth, dev) != 0) return -1;
  uint32_t magic = mmio_read32(dev->base + VIRTIO_MMIO_MAGIC);
  uint32_t version = mmio_read32(dev->base + VIRTIO_MMIO_VERSION);
  if (magic != VIRTIO_MMIO_MAGIC_VALUE || version != 2) {
    pl_printf("virtio at 0x%lx: magic=0x%x version=%u, expected a modern device\n", dev->base,
              magic, version);
    return -1;
  }
  return 0;
}

uint32_t virtio_status(const struct virtio_dev* dev) {
  return mmio_read32(dev->base + VIRTIO_MMIO_STATUS);
}

static void set_status(struct virtio_dev* dev, uint32_t bits) {
  mmio_write32(dev->base + VIRTIO_MMIO_STATUS, virtio_status(dev) | bits);
}

void virtio_reset(struct virtio_dev* dev) {
  mmio_write32(dev->base + VIRTIO_MMIO_STATUS, 0);
  /* §2.4: after writing 0 the driver waits for the status to read 0. */
  for (uint64_t deadline = virtio_deadline(); virtio_status(dev) != 0;) {
    if (virtio_expired(deadline)) payload_fail("virtio reset: status never read back 0");
    cpu_relax();
  }
}

int virtio_init(struct virtio_dev* dev, uint64_t wanted) {
  virtio_reset(dev);
  set_status(dev, VIRTIO_STATUS_ACKNOWLEDGE);
  set_status(dev, VIRTIO_STATUS_DRIVER);
  uint64_t base = dev->base;
  mmio_write32(base + VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
  uint64_t offered = (uint64_t)mmio_read32(base + VIRTIO_MMIO_DEVICE_FEATURES) << 32;
  mmio_write32(base + VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
  offered |= mmio_read32(base + VIRTIO_MMIO_DEVICE_FEATURES);
  dev->device_features = offered;
  if (!(offered & VIRTIO_F_VERSION_1)) {
    set_status(dev, VIRTIO_STATUS_FAILED);
    return -1;
  }
  uint64_t accepted = (offered & wanted) | VIRTIO_F_VERSION_1;
  mmio_write32(base + VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
  mmio_write32(base + VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(accepted >> 32));
  mmio_write32(base + VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
  mmio_write32(base + VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)accepted);
  set_status(dev, VIRTIO_STATUS_FEATURES_OK);
  if (!(virtio_status(dev) & VIRTIO_STATUS_FEATURES_OK)) {
    set_status(dev, VIRTIO_STATUS_FAILED);
    return -1;
  }
  dev->features = accepted;
  return 0;
}

void virtio_driver_ok(struct virtio_dev* dev) { set_status(dev, VIRTIO_STATUS_DRIVER_OK); }

uint32_t virtio_ack_interrupt(const struct virtio_dev* dev) {
  uint32_t isr = mmio_read32(dev->base + VIRTIO_MMIO_INTERRUPT_STATUS);
  if (isr) mmio_write32(dev->base + VIRTIO_MMIO_INTERRUPT_ACK, isr);
  return isr;
}

/* A config field of `width` bytes (1, 4, or 8 as two 32-bit halves). The
 * read counts only if the config generation did not change across it: the
 * device may update the fields meanwhile, and 64 bits are not one access. */
static uint64_t config_read(const struct virtio_dev* dev, uint32_t offset, int width) {
  uint64_t field = dev->base + VIRTIO_MMIO_CONFIG + offset;
  uint32_t gen;
  uint64_t v;
  do {
    gen = mmio_read32(dev->base + VIRTIO_MMIO_CONFIG_GENERATION);
    if (width == 1) {
      v = mmio_read8(field);
    } else {
      v = mmio_read32(field);
      if (width == 8) v |= (uint64_t)mmio_read32(field + 4) << 32;
    }
  } while (gen != mmio_read32(dev->base + VIRTIO_MMIO_CONFIG_GENERATION));
  return v;
}

uint8_t virtio_config8(const struct virtio_dev* dev, uint32_t offset) {
  return (uint8_t)config_read(dev, offset, 1);
}

uint32_t virtio_config32(const struct virtio_dev* dev, uint32_t offset) {
  return (uint32_t)config_read(dev, offset, 4);
}

uint64_t virtio_config64(const struct virtio_dev* dev, uint32_t offset) {
  return config_read(dev, offset, 8);
}

int virtq_setup(struct virtio_dev* dev, struct virtq* q, uint16_t index, uint16_t size) {
  uint64_t base = dev->base;
  mmio_write32(base + VIRTIO_MMIO_QUEUE_SEL, index);
  uint32_t max = mmio_read32(base + VIRTIO_MMIO_QUEUE_NUM_MAX);
  if (max == 0 || size > max || size > VIRTQ_MAX_SIZE || (size & (size - 1)) != 0) {
    pl_printf("virtq %u: size %u not possible (QueueNumMax %u)\n", index, size, max);
    return -1;
  }
  if (mmio_read32(base + VIRTIO_MMIO_QUEUE_READY) != 0) {
    pl_printf("virtq %u: already ready after reset\n", index);
    return -1;
  }
  memset(q, 0, sizeof *q);
  q->dev = dev;
  q->index = index;
  q->size = size;
  /* §2.7: descriptor table 16-byte, driver area 2-byte, device area 4-byte
   * aligned; a page each keeps them apart and easy to read in dumps. */
  q->desc = virtio_alloc(sizeof(struct virtq_desc) * size, 4096);
  q->avail = virtio_alloc(6 + 2 * (size_t)size, 4096);
  q->used = virtio_alloc(6 + sizeof(struct virtq_used_elem) * (size_t)size, 4096);
  for (uint16_t i = 0; i < size; ++i) q->desc[i].next = (uint16_t)(i + 1);
  q->free_head = 0;
  q->num_free = size;
  uint64_t desc = (uint64_t)q->desc, avail = (uint64_t)q->avail, used = (uint64_t)q->used;
  mmio_write32(base + VIRTIO_MMIO_QUEUE_NUM, size);
  mmio_write32(base + VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)desc);
  mmio_write32(base + VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(desc >> 32));
  mmio_write32(base + VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)avail);
  mmio_write32(base + VIRTIO_MMIO_QUEUE_DRIVER_HIGH, (uint32_t)(avail >> 32));
  mmio_write32(base + VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)used);
  mmio_write32(base + VIRTIO_MMIO_QUEUE_DEVICE_HIGH, (uint32_t)(used >> 32));
  mmio_write32(base + VIRTIO_MMIO_QUEUE_READY, 1);
  if (mmio_read32(base + VIRTIO_MMIO_QUEUE_READY) != 1) {
    pl_printf("virtq %u: QueueReady did not stick\n", index);
    return -1;
  }
  return 0;
}

int virtq_add(struct virtq* q, const struct virtq_buf* bufs, unsigned n) {
  if (n == 0 || n > q->num_free) return -1;
  uint16_t head = q->free_head, idx = head;
  uint32_t writable = 0;
  for (unsigned i = 0; i < n; ++i) {
    struct virtq_desc* d = &q->desc[idx];
    d->addr = (uint64_t)bufs[i].addr;
    d->len = bufs[i].len;
    d->flags =
        (uint16_t)((bufs[i].write ? VIRTQ_DESC_F_WRITE : 0) | (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
    if (bufs[i].write) writable += bufs[i].len;
    /* The free list is linked through `next`, so it already names the
     * chain's next descriptor. */
    idx = d->next;
  }
  q->free_head = idx;
  q->num_free = (uint16_t)(q->num_free - n);
  q->posted_len[head] = writable;
  q->in_flight[head] = 1;
  /* §2.7.13: descriptors, then the ring entry, then the index (x86 keeps
   * stores in order; the compiler must too). */
  barrier();
  q->avail[2 + q->avail_idx % q->size] = head;
  barrier();
  q->avail_idx = (uint16_t)(q->avail_idx + 1);
  q->avail[1] = q->avail_idx;
  return head;
}

void virtq_kick(struct virtq* q) {
  /* §2.7.13.4: publish the index before reading the device's suppression flag. */
  mb();
  if (q->used[0] & VIRTQ_USED_F_NO_NOTIFY) return;
  mmio_write32(q->dev->base + VIRTIO_MMIO_QUEUE_NOTIFY, q->index);
}

int virtq_get(struct virtq* q, uint32_t* len) {
  uint16_t used_idx = q->used[1];
  if (used_idx == q->last_used) return -1;
  if ((uint16_t)(used_idx - q->last_used) > q->size) {
    pl_printf("virtq %u: used idx %u ran %u ahead of %u\n", q->index, used_idx,
              (uint16_t)(used_idx - q->last_used), q->last_used);
    payload_fail("device moved the used index by more than the queue size");
  }
  barrier();
  const volatile struct virtq_used_elem* ring =
      (const volatile struct virtq_used_elem*)(q->used + 2);
  const volatile struct virtq_used_elem* e = &ring[q->last_used % q->size];
  uint32_t id = e->id, used_len = e->len;
  if (id >= q->size || !q->in_flight[id]) {
    pl_printf("virtq %u: used id %u was never posted\n", q->index, id);
    payload_fail("device used a descriptor the driver did not post");
  }
  if (used_len > q->posted_len[id]) {
    pl_printf("virtq %u: used len %u for head %u exceeds the %u writable bytes\n", q->index,
              used_len, id, q->posted_len[id]);
    payload_fail("device claims to have written more than the buffer holds");
  }
  q->in_flight[id] = 0;
  q->last_used = (uint16_t)(q->last_used + 1);
  /* Return the chain to the free list. */
  uint16_t tail = (uint16_t)id, count = 1;
  while (q->desc[tail].flags & VIRTQ_DESC_F_NEXT) {
    tail = q->desc[tail].next;
    ++count;
  }
  q->desc[tail].next = q->free_head;
  q->free_head = (uint16_t)id;
  q->num_free = (uint16_t)(q->num_free + count);
  if (len) *len = used_len;
  return (int)id;
}

int64_t virtq_exchange(struct virtq* q, const struct virtq_buf* bufs, unsigned n) {
  int head = virtq_add(q, bufs, n);
  if (head < 0) return -1;
  virtq_kick(q);
  for (uint64_t deadline = virtio_deadline(); !virtio_expired(deadline);) {
    uint32_t len;
    int got = virtq_get(q, &len);
    if (got == head) return len;
    if (got >= 0) {
      pl_printf("virtq %u: used head %u while waiting for %u\n", q->index, (unsigned)got,
                (unsigned)head);
      return -1;
    }
    cpu_relax();
  }
  pl_printf("virtq %u: the device never used head %u\n", q->index, (unsigned)head);
  return -1;
}
