// The host side of ember's vsock: Firecracker's hybrid unix-socket backend
// (reference/firecracker-compat.md §3).
//
// Host-initiated: a client connects to `uds_path` and writes "CONNECT <port>\n";
// we pick a local port in [2^30, 2^31) round-robin, send REQUEST to the guest
// and, on RESPONSE, answer "OK <local_port>\n". No RESPONSE within 2 s, or a
// RST, closes the client.
// Guest-initiated: a REQUEST to CID 2 port P connects to "<uds_path>_<P>";
// RESPONSE on success, RST otherwise.
//
// All fds (listener, handshaking clients, connections, the timeout timerfd)
// are registered in the device's EventLoop; nothing blocks. Packets waiting
// for the guest are queued per connection (at most one queue entry each) plus
// a bounded queue of RSTs for packets that match no connection.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "vmm/common/event_loop.h"
#include "vmm/common/unique_fd.h"
#include "vmm/devices/virtio/vsock/connection.h"
#include "vmm/logger/logger.h"

namespace ember::vmm::virtio {

inline constexpr size_t kVsockMaxConnections = 1023;
inline constexpr size_t kVsockMaxStrayRsts = 256;
inline constexpr size_t kVsockMaxHandshakeLine = 32;
inline constexpr uint32_t kVsockFirstLocalPort = 1u << 30;

class VsockMuxer {
 public:
  struct Hooks {
    // Takes the device lock; loop handlers run under it.
    std::function<std::unique_lock<std::mutex>()> lock;
    // Called with the lock held when packets wait for the RX queue.
    std::function<void()> rx_ready;
  };

  // Binds and listens on `uds_path`; throws common::Error naming the path if
  // it exists or cannot be bound.
  VsockMuxer(uint64_t guest_cid, std::string uds_path, Logger& logger, VsockCounters& counters);
  ~VsockMuxer();
  VsockMuxer(const VsockMuxer&) = delete;
  VsockMuxer& operator=(const VsockMuxer&) = delete;

  // Starts serving on `loop` (device activation).
  void start(common::EventLoop& loop, Hooks hooks);
  // Drops every connection and handshake and unregisters from the loop; the
  // listener stays bound (device reset).
  void stop();
  // The device's rings stopped (vhost-user GET_VRING_BASE on a VM pause):
  // keep every connection, but ask for no RX processing (rx_ready is not
  // called) and let no timeout run, since the guest cannot answer. Host
  // sockets stay watched: host-bound bytes keep flowing out, new host
  // connections complete their handshake and wait, and guest-bound bytes
  // stay in the host sockets (they are only ever read into RX buffers).
  void pause();
  // Rings running again: deadlines move by the time spent paused, and
  // rx_ready is called if packets wait.
  void resume();
  bool paused() const { return paused_at_ != 0; }

  // A packet the guest put on the TX queue.
  void on_tx_packet(const TxPacket& packet);
  bool has_pending_rx() const { return !stray_rsts_.empty() || !rxq_.empty(); }
  // Writes the next packet into `chain`'s writable part (at least a header's
  // worth); returns the bytes written, 0 when nothing was ready.
  uint32_t fill_rx(const GuestMemory& memory, const DescriptorChain& chain);

  size_t connection_count() const { return conns_.size(); }
  const std::string& uds_path() const { return uds_path_; }

 private:
  struct Entry {
    std::unique_ptr<VsockConnection> conn;
    bool queued = false;          // in rxq_
    bool watched = false;         // fd in the loop
    uint32_t events = 0;          // interest registered
    uint64_t killq_expiry = 0;    // expiry already in killq_
    bool host_initiated = false;  // owns its port in local_ports_
  };
  struct Handshake {
    common::UniqueFd fd;
    std::string line;
  };
  static uint64_t key(uint32_t local_port, uint32_t peer_port) {
    return (uint64_t(local_port) << 32) | peer_port;
  }

  void on_listener();
  void on_handshake(int fd);
  void on_connection_event(uint64_t k, uint32_t events);
  void on_timer();
  void add_connection(std::unique_ptr<VsockConnection> conn);
  void sync(uint64_t k);
  void remove(uint64_t k);
  void drop_handshake(int fd);
  void queue_rst(const VsockHeader& to);
  bool allocate_local_port(uint32_t peer_port, uint32_t& out);
  void arm_timer();
  void notify_rx();
  static uint64_t now_ns();

  uint64_t guest_cid_;
  std::string uds_path_;
  Logger& logger_;
  VsockCounters& counters_;
  common::UniqueFd listener_;
  common::UniqueFd timer_;
  common::EventLoop* loop_ = nullptr;
  Hooks hooks_;

  std::unordered_map<uint64_t, Entry> conns_;
  std::unordered_set<uint32_t> local_ports_;  // host-initiated ports in use
  uint32_t next_local_port_ = kVsockFirstLocalPort;
  std::unordered_map<int, Handshake> handshakes_;
  std::deque<uint64_t> rxq_;
  std::deque<VsockHeader> stray_rsts_;
  // (expiry, connection): all timeouts are 2 s, so appending keeps it sorted.
  std::deque<std::pair<uint64_t, uint64_t>> killq_;
  uint64_t armed_for_ = 0;
  uint64_t paused_at_ = 0;  // now_ns() at pause(), 0 when not paused
};

}  // namespace ember::vmm::virtio
