/* virtio-vsock driver and a tiny stream-socket layer for payloads (virtio
 * 1.2 §5.10) on top of virtio.h. Polling only: every wait loop calls
 * vsock_poll(), which takes the packets the device delivered on the RX queue,
 * answers what the protocol requires (RESPONSE to a REQUEST on a listening
 * port, RST to packets for unknown connections, CREDIT_UPDATE to
 * CREDIT_REQUEST) and puts the buffers back.
 *
 * Flow control (§5.10.6.3): each connection has a VSOCK_CONN_BUF receive
 * buffer advertised as buf_alloc; fwd_cnt counts bytes the application took
 * out; sends stop when the peer's credit (its buf_alloc minus our bytes in
 * flight) is used up, and wait for its CREDIT_UPDATE. */
#ifndef EMBER_PAYLOAD_VIRTIO_VSOCK_H
#define EMBER_PAYLOAD_VIRTIO_VSOCK_H

#include "virtio.h"

#define VSOCK_HOST_CID 2u
#define VSOCK_TYPE_STREAM 1u

#define VSOCK_OP_REQUEST 1u
#define VSOCK_OP_RESPONSE 2u
#define VSOCK_OP_RST 3u
#define VSOCK_OP_SHUTDOWN 4u
#define VSOCK_OP_RW 5u
#define VSOCK_OP_CREDIT_UPDATE 6u
#define VSOCK_OP_CREDIT_REQUEST 7u

#define VSOCK_SHUTDOWN_RCV 1u
#define VSOCK_SHUTDOWN_SEND 2u

/* §5.10.6: the packet header, little-endian, 44 bytes. */
struct vsock_hdr {
  uint64_t src_cid;
  uint64_t dst_cid;
  uint32_t src_port;
  uint32_t dst_port;
  uint32_t len;
  uint16_t type;
  uint16_t op;
  uint32_t flags;
  uint32_t buf_alloc;
  uint32_t fwd_cnt;
} __attribute__((packed));

#define VSOCK_QUEUE_SIZE 16
#define VSOCK_RX_BUF_SIZE 4096u
#define VSOCK_CONN_BUF (64u * 1024)
#define VSOCK_TX_MAX 4096u
#define VSOCK_MAX_CONNS 4
#define VSOCK_EVENTS 4

enum vsock_state {
  VSOCK_FREE = 0,
  VSOCK_LISTEN,     /* waiting for one REQUEST on local_port */
  VSOCK_CONNECTING, /* our REQUEST sent */
  VSOCK_ESTABLISHED,
  VSOCK_CLOSING, /* our SHUTDOWN(RCV|SEND) sent, waiting for RST */
  VSOCK_CLOSED,  /* RST seen */
};

struct vsock_conn {
  enum vsock_state state;
  uint32_t local_port;
  uint32_t peer_port;
  uint8_t* buf;          /* VSOCK_CONN_BUF bytes, a ring indexed by the counters */
  uint32_t rx_cnt;       /* payload bytes received (wrapping) */
  uint32_t fwd_cnt;      /* of those, taken by the application */
  uint32_t fwd_cnt_sent; /* the fwd_cnt the peer last heard of */
  uint32_t tx_cnt;       /* payload bytes sent */
  uint32_t peer_buf_alloc;
  uint32_t peer_fwd_cnt;
  int credit_requested;
  int peer_shut_rcv;  /* the peer will receive no more */
  int peer_shut_send; /* the peer will send no more */
  int reset;          /* an RST arrived */
};

struct vsock {
  struct virtio_dev dev;
  struct virtq rx, tx, ev;
  uint64_t guest_cid;
  uint8_t* rx_buf_of_head[VIRTQ_MAX_SIZE];
  uint8_t* ev_buf_of_head[VIRTQ_MAX_SIZE];
  struct vsock_hdr* tx_hdr;
  struct vsock_conn conns[VSOCK_MAX_CONNS];
  uint32_t next_port;
  /* What the layer saw, for the test's report. */
  uint32_t rx_packets, tx_packets, rsts_sent, strays, events, credit_updates_sent;
};

/* Finds the vsock device, negotiates VERSION_1 only, sets up rx/tx/event
 * queues, fills rx and event with buffers, DRIVER_OK, and reads guest_cid
 * from the config space (§5.10.4). 0 on success. */
int vsock_init(struct vsock* v);
/* Processes everything the device delivered so far. */
void vsock_poll(struct vsock* v);

/* A connection that waits for one REQUEST to `port`. */
struct vsock_conn* vsock_listen(struct vsock* v, uint32_t port);
/* Waits until `c` (from vsock_listen) is established. 0, or -1 on timeout. */
int vsock_accept(struct vsock* v, struct vsock_conn* c);
/* Connects to the host (CID 2) on `port`. Returns the connection, or 0 with
 * *result = -1 if the host answered RST, -2 if it did not answer. */
struct vsock_conn* vsock_connect(struct vsock* v, uint32_t port, int* result);
/* Sends all `len` bytes, waiting for credit as needed. 0, or -1 if the
 * connection was reset or the peer stopped granting credit. */
int vsock_send(struct vsock* v, struct vsock_conn* c, const void* data, uint32_t len);
/* Receives up to `max` bytes: > 0 bytes, 0 at end of stream (the peer shut
 * its sending side or reset), -1 on timeout. */
int64_t vsock_recv(struct vsock* v, struct vsock_conn* c, void* buf, uint32_t max);
/* SHUTDOWN(SEND): the peer reads end of stream after our last byte. */
void vsock_shutdown_send(struct vsock* v, struct vsock_conn* c);
/* Ends the connection (§5.10.6.5 clean disconnect) and frees it. Returns how
 * it ended: 0 the peer answered our SHUTDOWN with RST, 1 the peer had shut
 * down both ways and we sent RST, 2 it was reset already, -1 no answer (we
 * sent RST). */
int vsock_close(struct vsock* v, struct vsock_conn* c);

#endif
