/* virtio-vsock end to end on ember's KVM path, against ember's hybrid
 * unix-socket host side. Parameters come from the command line (the host
 * test picks them): ember.seed, ember.refused, ember.connect, ember.listen,
 * ember.send_bytes.
 *  1. config space: guest_cid;
 *  2. connect to host port ember.refused, where nothing listens: RST;
 *  3. connect to host port ember.connect (the host listens on
 *     <uds_path>_<port>), send ember.send_bytes of fill_pattern(ember.seed),
 *     shut down sending, receive until the host closes;
 *  4. listen on ember.listen, accept the host's "CONNECT <port>", echo every
 *     byte back until the host shuts down its side, then close.
 * Lines for the host test:
 *   vsock guest_cid=<cid> features=0x<acked>
 *   vsock connect port=<p> result=<0 ok|-1 RST|-2 no answer> local_port=<p>
 *   vsock sent bytes=<n> hash=<hash> status=<0|-1>
 *   vsock received bytes=<n> hash=<hash> end=<0 eof|-1 timeout>
 *   vsock connect closed=<how, see vsock_close>
 *   vsock listening port=<p>
 *   vsock accepted port=<p> peer_port=<host side port>
 *   vsock echo bytes=<n> hash=<hash> end=<0|-1> send_status=<0|-1>
 *   vsock echo closed=<how> */
#include "payload.h"
#include "virtio_vsock.h"

#define STREAM_MAX (192u * 1024)

static struct vsock vs;
static uint8_t stream[STREAM_MAX];
static uint8_t chunk[VSOCK_TX_MAX];

static void connect_refused(uint32_t port) {
  int result;
  struct vsock_conn* c = vsock_connect(&vs, port, &result);
  pl_printf("vsock connect port=%u result=%d local_port=0\n", port, result);
  if (c) vsock_close(&vs, c);
}

static void connect_and_exchange(uint32_t port, uint64_t seed, uint32_t send_bytes) {
  int result;
  struct vsock_conn* c = vsock_connect(&vs, port, &result);
  pl_printf("vsock connect port=%u result=%d local_port=%u\n", port, result, c ? c->local_port : 0);
  if (!c) payload_fail("vsock: connection to the host listener failed");

  if (send_bytes > STREAM_MAX) send_bytes = STREAM_MAX;
  fill_pattern(seed, stream, send_bytes);
  int status = vsock_send(&vs, c, stream, send_bytes);
  vsock_shutdown_send(&vs, c);
  pl_printf("vsock sent bytes=%u hash=%lx status=%d\n", send_bytes, hash64_of(stream, send_bytes),
            status);

  struct hash64 hash;
  hash64_init(&hash);
  uint32_t total = 0;
  int64_t n;
  while ((n = vsock_recv(&vs, c, chunk, sizeof chunk)) > 0) {
    hash64_update(&hash, chunk, (size_t)n);
    total += (uint32_t)n;
  }
  pl_printf("vsock received bytes=%u hash=%lx end=%ld\n", total, hash64_final(&hash), n);
  pl_printf("vsock connect closed=%d\n", vsock_close(&vs, c));
}

static void listen_and_echo(uint32_t port) {
  struct vsock_conn* c = vsock_listen(&vs, port);
  pl_printf("vsock listening port=%u\n", port);
  if (vsock_accept(&vs, c) != 0) payload_fail("vsock: no host connection arrived");
  pl_printf("vsock accepted port=%u peer_port=%u\n", c->local_port, c->peer_port);
  struct hash64 hash;
  hash64_init(&hash);
  uint32_t total = 0;
  int send_status = 0;
  int64_t n;
  while ((n = vsock_recv(&vs, c, chunk, sizeof chunk)) > 0) {
    hash64_update(&hash, chunk, (size_t)n);
    total += (uint32_t)n;
    if ((send_status = vsock_send(&vs, c, chunk, (uint32_t)n)) != 0) break;
  }
  pl_printf("vsock echo bytes=%u hash=%lx end=%ld send_status=%d\n", total, hash64_final(&hash), n,
            send_status);
  pl_printf("vsock echo closed=%d\n", vsock_close(&vs, c));
}

void payload_main(void) {
  paging_map_4g();
  uint64_t seed = pl_cmdline_u64("ember.seed", 1);
  uint32_t refused = (uint32_t)pl_cmdline_u64("ember.refused", 0);
  uint32_t connect_port = (uint32_t)pl_cmdline_u64("ember.connect", 0);
  uint32_t listen_port = (uint32_t)pl_cmdline_u64("ember.listen", 0);
  uint32_t send_bytes = (uint32_t)pl_cmdline_u64("ember.send_bytes", 1000);

  if (vsock_init(&vs) != 0) payload_fail("virtio-vsock: initialisation failed");
  pl_printf("vsock guest_cid=%lu features=0x%lx\n", vs.guest_cid, vs.dev.features);
  if (refused) connect_refused(refused);
  if (connect_port) connect_and_exchange(connect_port, seed, send_bytes);
  if (listen_port) listen_and_echo(listen_port);
  pl_printf(
      "vsock stats rx_packets=%u tx_packets=%u rsts_sent=%u strays=%u events=%u "
      "credit_updates=%u\n",
      vs.rx_packets, vs.tx_packets, vs.rsts_sent, vs.strays, vs.events, vs.credit_updates_sent);
  virtio_reset(&vs.dev);
  payload_pass();
}
