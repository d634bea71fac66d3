// A small guest-side vsock driver and stream stack for host-side tests and
// benchmarks: real rx/tx/event split virtqueues in real guest memory, RX
// buffers posted like Linux posts them, and per-connection credit accounting
// (virtio 1.2 §5.10.6.3) so the device sees a well-behaved peer unless a
// test deliberately misbehaves through send_raw().
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "vmm/common/event_loop.h"
#include "vmm/devices/virtio/testing/driver_queue.h"
#include "vmm/devices/virtio/vsock/packet.h"

namespace ember::vmm::virtio::testing {

struct VsockPacket {
  VsockHeader header;
  std::vector<uint8_t> payload;
};

class VsockGuest {
 public:
  struct Conn {
    uint32_t guest_port = 0;
    uint32_t host_port = 0;
    bool established = false;
    bool reset = false;            // RST received
    uint32_t peer_shutdown = 0;    // SHUTDOWN flags received
    std::deque<uint8_t> received;  // RW payload not read by the "application" yet
    uint64_t total_received = 0;
    uint32_t fwd_cnt = 0;  // bytes the application consumed
    uint32_t last_fwd_cnt_sent = 0;
    uint32_t tx_cnt = 0;
    uint32_t peer_buf_alloc = 0;
    uint32_t peer_fwd_cnt = 0;
  };

  // `rx_buffer_size`: payload bytes per RX buffer (Linux uses 4 KiB).
  VsockGuest(const GuestMemory& memory, GuestAllocator& allocator, VirtioDevice& device,
             common::EventLoop& loop, uint64_t cid = 3, uint32_t rx_buffers = 128,
             uint32_t rx_buffer_size = 4096, uint32_t buf_alloc = 256 * 1024);

  // Activates the device with the three queues.
  void activate(uint64_t features);

  // Runs the device loop once (up to `timeout_ms`), then drains the RX used
  // ring into connections / the raw packet log and re-posts RX buffers.
  void pump(int timeout_ms = 0);
  // Pumps until `done()` or the timeout; returns done().
  bool pump_until(const std::function<bool()>& done, int timeout_ms = 5000);

  // Sends one packet (header as given, src/dst cids filled if zero).
  void send_raw(VsockHeader header, const std::vector<uint8_t>& payload = {});
  // Queue a raw TX chain and kick.
  void kick_tx();
  void kick_rx();

  // Stream layer.
  Conn& connect(uint32_t guest_port, uint32_t host_port);  // sends REQUEST
  void listen(uint32_t port) { listening_.insert(port); }
  // Sends as much of `data` as credit allows now; returns bytes queued.
  size_t write(Conn& c, const uint8_t* data, size_t len);
  // The application reads up to `max` bytes; returns them and credits the host.
  std::vector<uint8_t> read(Conn& c, size_t max = SIZE_MAX);
  void shutdown(Conn& c, uint32_t flags);
  void rst(Conn& c);
  Conn* find(uint32_t guest_port, uint32_t host_port);
  // Connections the host opened (REQUEST received on a listening port).
  std::vector<Conn*> accepted() const { return accepted_; }
  // Control packets seen (everything but RW), newest last.
  std::vector<VsockPacket>& log() { return log_; }
  bool auto_credit = true;  // send CREDIT_UPDATE as the application reads, like Linux
  // Benchmarks: RW payload is consumed as it arrives (counted in
  // total_received, credited like a reader that keeps up) instead of queued.
  bool sink = false;
  // Benchmarks: sends up to `len` bytes of RW from a guest buffer filled once
  // (no per-packet host copy), as far as credit allows; returns bytes sent.
  size_t write_bulk(Conn& c, size_t len);
  RecordingInterrupt interrupt;

  uint64_t cid() const { return cid_; }
  DriverQueue& rx_queue() { return rx_; }
  DriverQueue& tx_queue() { return tx_; }

 private:
  void post_rx_buffer(GuestAddress addr);
  void reclaim_tx();
  void handle(const VsockPacket& p);
  // A header from the guest's end of `c` with its credit (virtio 1.2
  // §5.10.6.3); counts a RW packet's `len` bytes as sent.
  VsockHeader outgoing_header(Conn& c, uint16_t op, uint32_t flags, uint32_t len);
  void send_header(Conn& c, uint16_t op, uint32_t flags = 0, const uint8_t* data = nullptr,
                   uint32_t len = 0);

  const GuestMemory& memory_;
  GuestAllocator& allocator_;
  VirtioDevice& device_;
  common::EventLoop& loop_;
  uint64_t cid_;
  uint32_t rx_buffer_size_;
  uint32_t buf_alloc_;
  DriverQueue rx_, tx_, ev_;
  std::map<uint16_t, GuestAddress> rx_heads_;
  std::map<uint16_t, std::pair<GuestAddress, GuestAddress>> tx_heads_;  // in flight, for reuse
  std::deque<std::pair<GuestAddress, GuestAddress>> tx_free_;  // header + 64 KiB payload buffers
  std::map<std::pair<uint32_t, uint32_t>, Conn> conns_;
  std::set<uint32_t> listening_;
  std::vector<Conn*> accepted_;
  std::vector<VsockPacket> log_;
  bool tx_pending_kick_ = false;
  GuestAddress bulk_payload_;
  uint32_t sunk_ = 0;  // payload bytes of the RW packet being handled in sink mode
};

}  // namespace ember::vmm::virtio::testing
