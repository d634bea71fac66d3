// One vsock stream between a guest socket and a host unix socket: the
// connection state machine of Firecracker's hybrid vsock
// (reference/firecracker-compat.md §3), with half-close carried both ways.
//
//   LocalInit  --RESPONSE-->  Established   (host asked with CONNECT <port>)
//   PeerInit   --we send RESPONSE-->  Established   (guest REQUEST to <uds>_<port>)
//   Established: data both ways under credit flow control (virtio 1.2 §5.10.6.3)
//     host shuts its write side  -> SHUTDOWN(SEND) to the guest
//     guest SHUTDOWN(SEND)       -> shutdown(SHUT_WR) on the host socket once flushed
//     guest SHUTDOWN(RCV|SEND)   -> flush, then RST
//     host socket fully closed   -> drain it, SHUTDOWN(RCV|SEND), LocalClosed
//   LocalClosed: waiting 2 s for the guest's RST, then RST ourselves
//   Killed: RST pending; removed once sent
//
// Everything is non-blocking; the muxer feeds events and packets in and asks
// for packets to put on the RX queue.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "vmm/common/unique_fd.h"
#include "vmm/devices/virtio/vsock/packet.h"
#include "vmm/devices/virtio/vsock/vsock_counters.h"

namespace ember::vmm::virtio {

// Our receive buffer per connection, advertised as buf_alloc: what the guest
// may send before we forward it to the host socket.
inline constexpr uint32_t kVsockConnBufAlloc = 64 * 1024;
// Send an unsolicited CREDIT_UPDATE when the guest believes we have less free
// space than this.
inline constexpr uint32_t kVsockCreditUpdateThreshold = 4 * 1024;
// How long a host-initiated REQUEST waits for RESPONSE, and a closed
// connection for the guest's RST.
inline constexpr uint64_t kVsockTimeoutNs = 2'000'000'000;

class VsockConnection {
 public:
  enum class State { kLocalInit, kPeerInit, kEstablished, kLocalClosed, kKilled };

  // Host-initiated: a client sent "CONNECT <peer_port>\n" on the listener.
  static std::unique_ptr<VsockConnection> local_init(common::UniqueFd stream, uint64_t guest_cid,
                                                     uint32_t local_port, uint32_t peer_port,
                                                     VsockCounters& counters);
  // Guest-initiated: the guest sent `request` and we connected `stream`.
  static std::unique_ptr<VsockConnection> peer_init(common::UniqueFd stream, uint64_t guest_cid,
                                                    const VsockHeader& request,
                                                    VsockCounters& counters);

  // A packet from the guest for this connection.
  void on_packet(const TxPacket& packet, uint64_t now_ns);
  // The host socket reported `events`.
  void on_host_event(uint32_t events, uint64_t now_ns);
  // The deadline from expiry_ns() passed.
  void on_expired(uint64_t now_ns);
  // Moves a pending deadline `delta_ns` later (time the guest was paused).
  void postpone_expiry(uint64_t delta_ns) {
    if (expiry_ns_ != 0) expiry_ns_ += delta_ns;
  }
  // Fills the next packet for the guest: `header` gets the header, payload
  // bytes go through `payload` (the RX chain's writable part after the
  // header). Returns false when there is nothing to send right now.
  bool fill_rx(VsockHeader& header, ChainCursor& payload, uint64_t now_ns);

  bool has_pending_rx() const { return pending_ != 0; }
  // EPOLLIN/EPOLLOUT interest for the host socket right now.
  uint32_t wanted_events() const;
  // False once the host socket needs no more polling (hung up, or killed).
  bool wants_watch() const;
  // Nothing left to do: the muxer removes it and closes the host socket.
  bool finished() const { return finished_; }
  uint64_t expiry_ns() const { return expiry_ns_; }
  State state() const { return state_; }
  int fd() const { return stream_.get(); }
  uint32_t local_port() const { return local_port_; }
  uint32_t peer_port() const { return peer_port_; }
  // Kills the connection: RST to the guest, host socket closed after.
  void kill();

 private:
  enum Pending : uint32_t {
    kPendRst = 1,
    kPendResponse = 2,
    kPendRequest = 4,
    kPendRw = 8,
    kPendShutdown = 16,
    kPendCreditUpdate = 32,
  };

  VsockConnection(common::UniqueFd stream, uint64_t guest_cid, uint32_t local_port,
                  uint32_t peer_port, State state, VsockCounters& counters);

  uint32_t peer_credit() const;
  bool draining() const;
  void send_to_host(const TxPacket& packet, uint64_t now_ns);
  void flush_to_host(uint64_t now_ns);
  void after_forward(uint64_t now_ns);
  void apply_peer_shutdowns(uint64_t now_ns);
  void init_header(VsockHeader& h);

  common::UniqueFd stream_;
  uint64_t guest_cid_;
  uint32_t local_port_;
  uint32_t peer_port_;
  State state_;
  VsockCounters& counters_;

  uint32_t pending_ = 0;
  uint32_t pending_shutdown_flags_ = 0;
  uint64_t expiry_ns_ = 0;
  bool finished_ = false;

  // Credit (all wrapping u32, virtio 1.2 §5.10.6.3).
  uint32_t rx_cnt_ = 0;             // payload bytes received from the guest
  uint32_t fwd_cnt_ = 0;            // of those, written to the host socket
  uint32_t last_fwd_cnt_sent_ = 0;  // fwd_cnt the guest has last heard of
  uint32_t tx_cnt_ = 0;             // payload bytes sent to the guest
  uint32_t peer_buf_alloc_ = 0;
  uint32_t peer_fwd_cnt_ = 0;
  bool credit_request_sent_ = false;

  // Host-bound bytes not written yet: the "OK <port>\n" reply first, then
  // guest payload (bounded by kVsockConnBufAlloc through the credit check).
  std::string host_prefix_;
  std::vector<uint8_t> tx_buf_;
  size_t tx_head_ = 0;

  bool host_eof_ = false;        // host shut its write side; we sent SHUTDOWN(SEND)
  bool host_hup_ = false;        // host socket done in both directions
  bool peer_shut_rcv_ = false;   // guest will not receive
  bool peer_shut_send_ = false;  // guest will not send
  bool host_write_shut_ = false;

  std::vector<iovec> iov_;  // scratch
};

}  // namespace ember::vmm::virtio
