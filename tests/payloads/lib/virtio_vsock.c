/* virtio-vsock driver and stream layer for payloads (see virtio_vsock.h). */
#include "virtio_vsock.h"

#define RX_QUEUE 0
#define TX_QUEUE 1
#define EVENT_QUEUE 2
#define HDR_SIZE ((uint32_t)sizeof(struct vsock_hdr))
#define FIRST_LOCAL_PORT 49152u

_Static_assert(sizeof(struct vsock_hdr) == 44, "virtio 1.2 §5.10.6 header is 44 bytes");

static void post_rx(struct vsock* v, uint8_t* buf) {
  struct virtq_buf b = {buf, VSOCK_RX_BUF_SIZE, 1};
  int head = virtq_add(&v->rx, &b, 1);
  if (head < 0) payload_fail("vsock: no room to repost an rx buffer");
  v->rx_buf_of_head[head] = buf;
}

static void post_event(struct vsock* v, uint8_t* buf) {
  struct virtq_buf b = {buf, 4, 1}; /* struct virtio_vsock_event { le32 id; } */
  int head = virtq_add(&v->ev, &b, 1);
  if (head < 0) payload_fail("vsock: no room to repost an event buffer");
  v->ev_buf_of_head[head] = buf;
}

int vsock_init(struct vsock* v) {
  memset(v, 0, sizeof *v);
  if (virtio_find(VIRTIO_ID_VSOCK, 0, &v->dev) != 0) return -1;
  if (virtio_init(&v->dev, 0) != 0) return -1;
  if (virtq_setup(&v->dev, &v->rx, RX_QUEUE, VSOCK_QUEUE_SIZE) != 0 ||
      virtq_setup(&v->dev, &v->tx, TX_QUEUE, VSOCK_QUEUE_SIZE) != 0 ||
      virtq_setup(&v->dev, &v->ev, EVENT_QUEUE, VSOCK_EVENTS) != 0) {
    return -1;
  }
  /* §5.10.5 device initialisation: buffers on the event and rx queues. */
  for (int i = 0; i < VSOCK_QUEUE_SIZE; ++i) post_rx(v, virtio_alloc(VSOCK_RX_BUF_SIZE, 4096));
  for (int i = 0; i < VSOCK_EVENTS; ++i) post_event(v, virtio_alloc(4, 4));
  v->tx_hdr = virtio_alloc(HDR_SIZE, 64);
  for (int i = 0; i < VSOCK_MAX_CONNS; ++i) v->conns[i].buf = virtio_alloc(VSOCK_CONN_BUF, 4096);
  v->next_port = FIRST_LOCAL_PORT;
  virtio_driver_ok(&v->dev);
  virtq_kick(&v->rx);
  virtq_kick(&v->ev);
  /* §5.10.4: le64 guest_cid; the upper 32 bits are reserved and zero. */
  v->guest_cid = virtio_config64(&v->dev, 0);
  return 0;
}

/* Puts one packet on the tx queue and waits until the device took it. */
static void send_packet(struct vsock* v, const struct vsock_hdr* h, const void* data) {
  memcpy(v->tx_hdr, h, HDR_SIZE);
  struct virtq_buf bufs[2] = {{v->tx_hdr, HDR_SIZE, 0}, {(void*)data, h->len, 0}};
  if (virtq_exchange(&v->tx, bufs, h->len ? 2 : 1) < 0)
    payload_fail("vsock: the device did not take a tx packet");
  ++v->tx_packets;
}

static void conn_send(struct vsock* v, struct vsock_conn* c, uint16_t op, uint32_t flags,
                      const void* data, uint32_t len) {
  struct vsock_hdr h;
  memset(&h, 0, sizeof h);
  h.src_cid = v->guest_cid;
  h.dst_cid = VSOCK_HOST_CID;
  h.src_port = c->local_port;
  h.dst_port = c->peer_port;
  h.len = len;
  h.type = VSOCK_TYPE_STREAM;
  h.op = op;
  h.flags = flags;
  h.buf_alloc = VSOCK_CONN_BUF;
  h.fwd_cnt = c->fwd_cnt;
  c->fwd_cnt_sent = c->fwd_cnt;
  if (op == VSOCK_OP_RW) c->tx_cnt += len;
  if (op == VSOCK_OP_RST) ++v->rsts_sent;
  if (op == VSOCK_OP_CREDIT_UPDATE) ++v->credit_updates_sent;
  send_packet(v, &h, data);
}

/* RST for a packet that matches no connection. */
static void reply_rst(struct vsock* v, const struct vsock_hdr* to) {
  struct vsock_hdr h;
  memset(&h, 0, sizeof h);
  h.src_cid = v->guest_cid;
  h.dst_cid = to->src_cid;
  h.src_port = to->dst_port;
  h.dst_port = to->src_port;
  h.type = VSOCK_TYPE_STREAM;
  h.op = VSOCK_OP_RST;
  ++v->rsts_sent;
  send_packet(v, &h, 0);
}

static struct vsock_conn* find_conn(struct vsock* v, uint32_t local_port, uint32_t peer_port) {
  for (int i = 0; i < VSOCK_MAX_CONNS; ++i) {
    struct vsock_conn* c = &v->conns[i];
    if (c->state != VSOCK_FREE && c->state != VSOCK_LISTEN && c->local_port == local_port &&
        c->peer_port == peer_port) {
      return c;
    }
  }
  return 0;
}

static struct vsock_conn* find_listener(struct vsock* v, uint32_t port) {
  for (int i = 0; i < VSOCK_MAX_CONNS; ++i) {
    if (v->conns[i].state == VSOCK_LISTEN && v->conns[i].local_port == port) return &v->conns[i];
  }
  return 0;
}

static struct vsock_conn* new_conn(struct vsock* v) {
  for (int i = 0; i < VSOCK_MAX_CONNS; ++i) {
    struct vsock_conn* c = &v->conns[i];
    if (c->state == VSOCK_FREE) {
      uint8_t* buf = c->buf;
      memset(c, 0, sizeof *c);
      c->buf = buf;
      return c;
    }
  }
  payload_fail("vsock: out of connections");
}

/* The connection buffer is a ring indexed by the free-running counters:
 * rx_cnt is where received bytes go, fwd_cnt where the application reads. */
static void ring_copy_in(struct vsock_conn* c, const uint8_t* src, uint32_t len) {
  uint32_t at = c->rx_cnt % VSOCK_CONN_BUF, first = VSOCK_CONN_BUF - at;
  if (first > len) first = len;
  fast_copy(c->buf + at, src, first);
  fast_copy(c->buf, src + first, len - first);
  c->rx_cnt += len;
}

static void ring_copy_out(struct vsock_conn* c, uint8_t* dst, uint32_t len) {
  uint32_t at = c->fwd_cnt % VSOCK_CONN_BUF, first = VSOCK_CONN_BUF - at;
  if (first > len) first = len;
  fast_copy(dst, c->buf + at, first);
  fast_copy(dst + first, c->buf, len - first);
  c->fwd_cnt += len;
}

static void on_packet(struct vsock* v, const struct vsock_hdr* h, const uint8_t* payload) {
  if (h->dst_cid != v->guest_cid || h->src_cid != VSOCK_HOST_CID || h->type != VSOCK_TYPE_STREAM) {
    pl_printf("vsock: stray packet op=%u %lu:%u -> %lu:%u type=%u\n", h->op, h->src_cid,
              h->src_port, h->dst_cid, h->dst_port, h->type);
    ++v->strays;
    return;
  }
  struct vsock_conn* c = find_conn(v, h->dst_port, h->src_port);
  if (!c) {
    if (h->op == VSOCK_OP_REQUEST && (c = find_listener(v, h->dst_port)) != 0) {
      c->peer_port = h->src_port;
      c->peer_buf_alloc = h->buf_alloc;
      c->peer_fwd_cnt = h->fwd_cnt;
      c->state = VSOCK_ESTABLISHED;
      conn_send(v, c, VSOCK_OP_RESPONSE, 0, 0, 0);
      return;
    }
    /* §5.10.6.5: a REQUEST nobody listens for, or any packet for no
     * connection, is answered with RST (an RST never is). */
    if (h->op != VSOCK_OP_RST) reply_rst(v, h);
    return;
  }
  c->peer_buf_alloc = h->buf_alloc;
  c->peer_fwd_cnt = h->fwd_cnt;
  c->credit_requested = 0;
  switch (h->op) {
    case VSOCK_OP_RESPONSE:
      if (c->state == VSOCK_CONNECTING) c->state = VSOCK_ESTABLISHED;
      break;
    case VSOCK_OP_RST:
      c->reset = 1;
      c->state = VSOCK_CLOSED;
      break;
    case VSOCK_OP_RW:
      if (c->state != VSOCK_ESTABLISHED || c->peer_shut_send) break;
      if ((uint32_t)(c->rx_cnt - c->fwd_cnt) + (uint64_t)h->len > VSOCK_CONN_BUF) {
        pl_printf("vsock: peer sent %u bytes with %u of %u buffered\n", h->len,
                  c->rx_cnt - c->fwd_cnt, VSOCK_CONN_BUF);
        payload_fail("vsock: the device sent beyond the credit we granted");
      }
      ring_copy_in(c, payload, h->len);
      break;
    case VSOCK_OP_SHUTDOWN:
      if (h->flags & VSOCK_SHUTDOWN_RCV) c->peer_shut_rcv = 1;
      if (h->flags & VSOCK_SHUTDOWN_SEND) c->peer_shut_send = 1;
      if (c->state == VSOCK_CLOSING && c->peer_shut_rcv && c->peer_shut_send) {
        conn_send(v, c, VSOCK_OP_RST, 0, 0, 0);
        c->state = VSOCK_CLOSED;
      }
      break;
    case VSOCK_OP_CREDIT_REQUEST:
      if (c->state == VSOCK_ESTABLISHED || c->state == VSOCK_CLOSING)
        conn_send(v, c, VSOCK_OP_CREDIT_UPDATE, 0, 0, 0);
      break;
    case VSOCK_OP_CREDIT_UPDATE:
    default:
      break;
  }
}

void vsock_poll(struct vsock* v) {
  int reposted = 0;
  uint32_t len;
  int head;
  while ((head = virtq_get(&v->rx, &len)) >= 0) {
    uint8_t* buf = v->rx_buf_of_head[head];
    ++v->rx_packets;
    struct vsock_hdr h;
    memcpy(&h, buf, HDR_SIZE);
    if (len < HDR_SIZE || h.len > len - HDR_SIZE) {
      pl_printf("vsock: rx buffer used with len=%u for a header announcing %u payload bytes\n", len,
                h.len);
      payload_fail("vsock: malformed rx packet from the device");
    }
    on_packet(v, &h, buf + HDR_SIZE);
    post_rx(v, buf);
    reposted = 1;
  }
  if (reposted) virtq_kick(&v->rx);
  while ((head = virtq_get(&v->ev, &len)) >= 0) {
    uint8_t* buf = v->ev_buf_of_head[head];
    uint32_t id;
    memcpy(&id, buf, 4);
    pl_printf("vsock: event id=%u\n", id);
    ++v->events;
    post_event(v, buf);
    virtq_kick(&v->ev);
  }
}

struct vsock_conn* vsock_listen(struct vsock* v, uint32_t port) {
  struct vsock_conn* c = new_conn(v);
  c->local_port = port;
  c->state = VSOCK_LISTEN;
  return c;
}

int vsock_accept(struct vsock* v, struct vsock_conn* c) {
  for (uint64_t deadline = virtio_deadline(); c->state == VSOCK_LISTEN;) {
    if (virtio_expired(deadline)) return -1;
    vsock_poll(v);
    cpu_relax();
  }
  return c->state == VSOCK_ESTABLISHED ? 0 : -1;
}

struct vsock_conn* vsock_connect(struct vsock* v, uint32_t port, int* result) {
  struct vsock_conn* c = new_conn(v);
  c->local_port = v->next_port++;
  c->peer_port = port;
  c->state = VSOCK_CONNECTING;
  conn_send(v, c, VSOCK_OP_REQUEST, 0, 0, 0);
  for (uint64_t deadline = virtio_deadline(); c->state == VSOCK_CONNECTING;) {
    if (virtio_expired(deadline)) {
      conn_send(v, c, VSOCK_OP_RST, 0, 0, 0);
      c->state = VSOCK_FREE;
      *result = -2;
      return 0;
    }
    vsock_poll(v);
    cpu_relax();
  }
  if (c->state != VSOCK_ESTABLISHED) {
    c->state = VSOCK_FREE;
    *result = -1;
    return 0;
  }
  *result = 0;
  return c;
}

static uint32_t peer_credit(const struct vsock_conn* c) {
  uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;
  return in_flight >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

int vsock_send(struct vsock* v, struct vsock_conn* c, const void* data, uint32_t len) {
  const uint8_t* p = data;
  uint64_t deadline = virtio_deadline();
  while (len) {
    if (c->state != VSOCK_ESTABLISHED || c->peer_shut_rcv) return -1;
    uint32_t credit = peer_credit(c);
    if (credit == 0) {
      if (!c->credit_requested) {
        c->credit_requested = 1;
        conn_send(v, c, VSOCK_OP_CREDIT_REQUEST, 0, 0, 0);
      }
      if (virtio_expired(deadline)) return -1;
      vsock_poll(v);
      cpu_relax();
      continue;
    }
    uint32_t chunk = len;
    if (chunk > credit) chunk = credit;
    if (chunk > VSOCK_TX_MAX) chunk = VSOCK_TX_MAX;
    conn_send(v, c, VSOCK_OP_RW, 0, p, chunk);
    p += chunk;
    len -= chunk;
    deadline = virtio_deadline();
    /* Keep the rx queue moving: credit updates arrive there. */
    vsock_poll(v);
  }
  return 0;
}

int64_t vsock_recv(struct vsock* v, struct vsock_conn* c, void* buf, uint32_t max) {
  for (uint64_t deadline = virtio_deadline();;) {
    uint32_t ready = c->rx_cnt - c->fwd_cnt;
    if (ready) {
      uint32_t n = ready < max ? ready : max;
      ring_copy_out(c, buf, n);
      /* The peer stalls once it thinks our buffer is full: tell it about
       * the room we made before it gets there. */
      uint32_t peer_view_free = VSOCK_CONN_BUF - (c->rx_cnt - c->fwd_cnt_sent);
      if (peer_view_free < VSOCK_CONN_BUF / 2 && c->state == VSOCK_ESTABLISHED &&
          !c->peer_shut_send)
        conn_send(v, c, VSOCK_OP_CREDIT_UPDATE, 0, 0, 0);
      return n;
    }
    if (c->peer_shut_send || c->reset || c->state != VSOCK_ESTABLISHED) return 0;
    if (virtio_expired(deadline)) return -1;
    vsock_poll(v);
    cpu_relax();
  }
}

void vsock_shutdown_send(struct vsock* v, struct vsock_conn* c) {
  if (c->state == VSOCK_ESTABLISHED) conn_send(v, c, VSOCK_OP_SHUTDOWN, VSOCK_SHUTDOWN_SEND, 0, 0);
}

int vsock_close(struct vsock* v, struct vsock_conn* c) {
  int how;
  if (c->reset || c->state == VSOCK_CLOSED) {
    how = 2;
  } else if (c->peer_shut_rcv && c->peer_shut_send) {
    conn_send(v, c, VSOCK_OP_RST, 0, 0, 0);
    how = 1;
  } else {
    conn_send(v, c, VSOCK_OP_SHUTDOWN, VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND, 0, 0);
    c->state = VSOCK_CLOSING;
    uint64_t deadline = virtio_deadline();
    while (c->state == VSOCK_CLOSING && !virtio_expired(deadline)) {
      vsock_poll(v);
      cpu_relax();
    }
    if (c->state == VSOCK_CLOSING) {
      conn_send(v, c, VSOCK_OP_RST, 0, 0, 0);
      how = -1;
    } else {
      how = c->reset ? 0 : 1;
    }
  }
  c->state = VSOCK_FREE;
  return how;
}
