/* Finds the virtio-mmio devices announced on the command line
 * ("virtio_mmio.device=4K@0xc0001000:5"), reports their identification
 * registers, and drives a full virtqueue round trip on the first test echo
 * device (device ID 126) if there is one (virtio 1.2 §3.1 initialisation,
 * §2.7 split virtqueue, §4.2.3 MMIO): one device-readable buffer and one
 * device-writable buffer. */
#include "payload.h"

#define REG_MAGIC 0x000
#define REG_VERSION 0x004
#define REG_DEVICE_ID 0x008
#define REG_VENDOR_ID 0x00c
#define REG_DEVICE_FEATURES 0x010
#define REG_DEVICE_FEATURES_SEL 0x014
#define REG_DRIVER_FEATURES 0x020
#define REG_DRIVER_FEATURES_SEL 0x024
#define REG_QUEUE_SEL 0x030
#define REG_QUEUE_NUM_MAX 0x034
#define REG_QUEUE_NUM 0x038
#define REG_QUEUE_READY 0x044
#define REG_QUEUE_NOTIFY 0x050
#define REG_INTERRUPT_STATUS 0x060
#define REG_INTERRUPT_ACK 0x064
#define REG_STATUS 0x070
#define REG_QUEUE_DESC_LOW 0x080
#define REG_QUEUE_DESC_HIGH 0x084
#define REG_QUEUE_DRIVER_LOW 0x090
#define REG_QUEUE_DRIVER_HIGH 0x094
#define REG_QUEUE_DEVICE_LOW 0x0a0
#define REG_QUEUE_DEVICE_HIGH 0x0a4
#define REG_CONFIG_GENERATION 0x0fc
#define REG_CONFIG 0x100

#define S_ACK 1
#define S_DRIVER 2
#define S_DRIVER_OK 4
#define S_FEATURES_OK 8

#define ECHO_DEVICE_ID 126
#define QSIZE 8
#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2

struct virtq_desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
struct virtq_avail {
  uint16_t flags;
  uint16_t idx;
  uint16_t ring[QSIZE];
};
struct virtq_used_elem {
  uint32_t id;
  uint32_t len;
};
struct virtq_used {
  uint16_t flags;
  uint16_t idx;
  struct virtq_used_elem ring[QSIZE];
};

static struct virtq_desc desc[QSIZE] __attribute__((aligned(16)));
static struct virtq_avail avail __attribute__((aligned(2)));
static struct virtq_used used __attribute__((aligned(4)));
static char request[32] = "ping from the guest";
static char response[64];

static uint64_t parse_hex(const char* s, const char** end) {
  uint64_t v = 0;
  for (;; ++s) {
    char c = *s;
    if (c >= '0' && c <= '9') v = v * 16 + (uint64_t)(c - '0');
    else if (c >= 'a' && c <= 'f') v = v * 16 + (uint64_t)(c - 'a' + 10);
    else break;
  }
  *end = s;
  return v;
}

static void roundtrip(uint64_t base) {
  mmio_write32(base + REG_STATUS, 0);
  mmio_write32(base + REG_STATUS, S_ACK);
  mmio_write32(base + REG_STATUS, S_ACK | S_DRIVER);
  mmio_write32(base + REG_DEVICE_FEATURES_SEL, 1);
  uint32_t high = mmio_read32(base + REG_DEVICE_FEATURES);
  mmio_write32(base + REG_DEVICE_FEATURES_SEL, 0);
  uint32_t low = mmio_read32(base + REG_DEVICE_FEATURES);
  pl_printf("features low=0x%x high=0x%x\n", low, high);
  PAYLOAD_CHECK(high & 1); /* VIRTIO_F_VERSION_1 */
  mmio_write32(base + REG_DRIVER_FEATURES_SEL, 1);
  mmio_write32(base + REG_DRIVER_FEATURES, 1);
  mmio_write32(base + REG_DRIVER_FEATURES_SEL, 0);
  mmio_write32(base + REG_DRIVER_FEATURES, 0);
  mmio_write32(base + REG_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
  PAYLOAD_CHECK(mmio_read32(base + REG_STATUS) & S_FEATURES_OK);

  mmio_write32(base + REG_QUEUE_SEL, 0);
  uint32_t max = mmio_read32(base + REG_QUEUE_NUM_MAX);
  pl_printf("queue0 max=%u\n", max);
  PAYLOAD_CHECK(max >= QSIZE);
  mmio_write32(base + REG_QUEUE_NUM, QSIZE);
  mmio_write32(base + REG_QUEUE_DESC_LOW, (uint32_t)(uint64_t)desc);
  mmio_write32(base + REG_QUEUE_DESC_HIGH, 0);
  mmio_write32(base + REG_QUEUE_DRIVER_LOW, (uint32_t)(uint64_t)&avail);
  mmio_write32(base + REG_QUEUE_DRIVER_HIGH, 0);
  mmio_write32(base + REG_QUEUE_DEVICE_LOW, (uint32_t)(uint64_t)&used);
  mmio_write32(base + REG_QUEUE_DEVICE_HIGH, 0);
  mmio_write32(base + REG_QUEUE_READY, 1);
  mmio_write32(base + REG_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);

  desc[0].addr = (uint64_t)request;
  desc[0].len = (uint32_t)strlen(request);
  desc[0].flags = VIRTQ_DESC_F_NEXT;
  desc[0].next = 1;
  desc[1].addr = (uint64_t)response;
  desc[1].len = sizeof response;
  desc[1].flags = VIRTQ_DESC_F_WRITE;
  desc[1].next = 0;
  avail.ring[0] = 0;
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  avail.idx = 1;
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  mmio_write32(base + REG_QUEUE_NOTIFY, 0);

  for (uint64_t spins = 0; *(volatile uint16_t*)&used.idx != 1; ++spins) {
    if (spins > 100000000ULL) payload_fail("the device never used the buffer");
    cpu_relax();
  }
  uint32_t isr = mmio_read32(base + REG_INTERRUPT_STATUS);
  mmio_write32(base + REG_INTERRUPT_ACK, isr);
  pl_printf("used id=%u len=%u interrupt_status=0x%x after_ack=0x%x\n", used.ring[0].id, used.ring[0].len, isr,
            mmio_read32(base + REG_INTERRUPT_STATUS));
  pl_printf("response=[%s]\n", response);

  char config[9] = {0};
  for (int i = 0; i < 8; ++i) config[i] = (char)mmio_read8(base + REG_CONFIG + i);
  pl_printf("config=[%s] generation=%u\n", config, mmio_read32(base + REG_CONFIG_GENERATION));
  mmio_write32(base + REG_STATUS, 0);
  pl_printf("status after reset=0x%x\n", mmio_read32(base + REG_STATUS));
}

void payload_main(void) {
  paging_map_4g();
  const char* cmdline = (const char*)(uint64_t) * (volatile uint32_t*)(payload_entry_state.rsi + ZP_CMD_LINE_PTR);
  const char* key = "virtio_mmio.device=";
  pl_printf("cmdline=[%s]\n", cmdline);
  unsigned found = 0;
  uint64_t first = 0;
  for (const char* p = strstr_n(cmdline, key); p; p = strstr_n(p + 1, key)) {
    const char* at = p + strlen(key);
    while (*at && *at != '@') ++at;
    if (*at != '@' || at[1] != '0' || at[2] != 'x') payload_fail("malformed virtio_mmio.device");
    const char* end;
    uint64_t base = parse_hex(at + 3, &end);
    unsigned gsi = 0;
    if (*end == ':') {
      for (++end; *end >= '0' && *end <= '9'; ++end) gsi = gsi * 10 + (unsigned)(*end - '0');
    }
    /* The first 8 bytes of config space: a block device's capacity in sectors. */
    uint64_t config0 = mmio_read32(base + REG_CONFIG) | ((uint64_t)mmio_read32(base + REG_CONFIG + 4) << 32);
    pl_printf("virtio device=%u base=0x%lx gsi=%u magic=0x%x version=%u device_id=%u vendor=0x%x config0=0x%lx\n",
              found, base, gsi, mmio_read32(base + REG_MAGIC), mmio_read32(base + REG_VERSION),
              mmio_read32(base + REG_DEVICE_ID), mmio_read32(base + REG_VENDOR_ID), config0);
    if (!first && mmio_read32(base + REG_DEVICE_ID) == ECHO_DEVICE_ID) first = base;
    ++found;
  }
  pl_printf("virtio devices=%u\n", found);
  if (first) roundtrip(first);
  payload_pass();
}
