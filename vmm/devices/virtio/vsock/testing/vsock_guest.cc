#include "vmm/devices/virtio/vsock/testing/vsock_guest.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <stdexcept>

namespace ember::vmm::virtio::testing {

VsockGuest::VsockGuest(const GuestMemory& memory, GuestAllocator& allocator, VirtioDevice& device,
                       common::EventLoop& loop, uint64_t cid, uint32_t rx_buffers,
                       uint32_t rx_buffer_size, uint32_t buf_alloc)
    : memory_(memory),
      allocator_(allocator),
      device_(device),
      loop_(loop),
      cid_(cid),
      rx_buffer_size_(rx_buffer_size),
      buf_alloc_(buf_alloc),
      rx_(memory, allocator, 256),
      tx_(memory, allocator, 256),
      ev_(memory, allocator, 256) {
  for (uint32_t i = 0; i < rx_buffers; ++i) {
    post_rx_buffer(allocator_.alloc(sizeof(VsockHeader) + rx_buffer_size_, 8));
  }
}

void VsockGuest::activate(uint64_t features) {
  auto guard = device_.lock();
  device_.activate(ActivationContext{
      memory_, {rx_.state(), tx_.state(), ev_.state()}, features, interrupt, loop_});
}

void VsockGuest::post_rx_buffer(GuestAddress addr) {
  uint16_t head = rx_.add_chain(
      {Buffer{addr, static_cast<uint32_t>(sizeof(VsockHeader) + rx_buffer_size_), true}});
  rx_heads_[head] = addr;
}

void VsockGuest::kick_tx() {
  tx_pending_kick_ = false;
  auto guard = device_.lock();
  device_.process_queue(1);
}

void VsockGuest::kick_rx() {
  auto guard = device_.lock();
  device_.process_queue(0);
}

void VsockGuest::reclaim_tx() {
  while (auto used = tx_.next_used()) {
    auto it = tx_heads_.find(static_cast<uint16_t>(used->id));
    if (it != tx_heads_.end()) {
      tx_free_.push_back(it->second);
      tx_heads_.erase(it);
    }
  }
}

void VsockGuest::send_raw(VsockHeader header, const std::vector<uint8_t>& payload) {
  if (header.src_cid == 0) header.src_cid = cid_;
  if (header.dst_cid == 0) header.dst_cid = kVsockHostCid;
  reclaim_tx();
  if (tx_.in_flight() >= 120) {
    kick_tx();
    reclaim_tx();
  }
  if (tx_free_.empty()) {
    tx_free_.emplace_back(allocator_.alloc(sizeof(VsockHeader), 8),
                          allocator_.alloc(kVsockMaxPayload, 8));
  }
  auto [hdr_addr, data_addr] = tx_free_.front();
  tx_free_.pop_front();
  memory_.write_obj(hdr_addr, header);
  std::vector<Buffer> chain{Buffer{hdr_addr, sizeof(VsockHeader), false}};
  if (!payload.empty()) {
    if (payload.size() > kVsockMaxPayload)
      throw std::runtime_error("vsock test payload above 64 KiB");
    memory_.write(data_addr, payload);
    chain.push_back(Buffer{data_addr, static_cast<uint32_t>(payload.size()), false});
  }
  uint16_t head = tx_.add_chain(chain);
  tx_heads_[head] = {hdr_addr, data_addr};
  tx_pending_kick_ = true;
}

void VsockGuest::pump(int timeout_ms) {
  if (tx_pending_kick_) kick_tx();
  loop_.run_once(timeout_ms);
  bool reposted = false;
  while (auto used = rx_.next_used()) {
    auto it = rx_heads_.find(static_cast<uint16_t>(used->id));
    if (it == rx_heads_.end()) continue;
    GuestAddress addr = it->second;
    rx_heads_.erase(it);
    if (used->len >= sizeof(VsockHeader)) {
      VsockPacket p;
      p.header = memory_.read_obj<VsockHeader>(addr);
      uint32_t payload = std::min<uint32_t>(used->len - sizeof(VsockHeader), rx_buffer_size_);
      if (sink && p.header.op == kVsockOpRw) {
        // Benchmarks: count the bytes where they landed, copy nothing.
        sunk_ = payload;
      } else {
        p.payload.resize(payload);
        memory_.read(addr + sizeof(VsockHeader), p.payload);
      }
      handle(p);
    }
    post_rx_buffer(addr);
    reposted = true;
  }
  if (reposted) kick_rx();
  if (tx_pending_kick_) kick_tx();
}

bool VsockGuest::pump_until(const std::function<bool()>& done, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    pump(10);
  }
  return true;
}

VsockGuest::Conn* VsockGuest::find(uint32_t guest_port, uint32_t host_port) {
  auto it = conns_.find({guest_port, host_port});
  return it == conns_.end() ? nullptr : &it->second;
}

VsockHeader VsockGuest::outgoing_header(Conn& c, uint16_t op, uint32_t flags, uint32_t len) {
  VsockHeader h;
  h.src_cid = cid_;
  h.dst_cid = kVsockHostCid;
  h.src_port = c.guest_port;
  h.dst_port = c.host_port;
  h.type = kVsockTypeStream;
  h.op = op;
  h.flags = flags;
  h.len = len;
  h.buf_alloc = buf_alloc_;
  h.fwd_cnt = c.fwd_cnt;
  c.last_fwd_cnt_sent = c.fwd_cnt;
  if (op == kVsockOpRw) c.tx_cnt += len;
  return h;
}

void VsockGuest::send_header(Conn& c, uint16_t op, uint32_t flags, const uint8_t* data,
                             uint32_t len) {
  VsockHeader h = outgoing_header(c, op, flags, len);
  send_raw(h, data ? std::vector<uint8_t>(data, data + len) : std::vector<uint8_t>{});
}

void VsockGuest::handle(const VsockPacket& p) {
  const VsockHeader& h = p.header;
  if (h.op != kVsockOpRw) log_.push_back(p);
  auto k = std::make_pair(h.dst_port, h.src_port);
  auto it = conns_.find(k);
  if (h.op == kVsockOpRequest) {
    if (listening_.count(h.dst_port) && it == conns_.end()) {
      Conn& c = conns_[k];
      c.guest_port = h.dst_port;
      c.host_port = h.src_port;
      c.established = true;
      c.peer_buf_alloc = h.buf_alloc;
      c.peer_fwd_cnt = h.fwd_cnt;
      accepted_.push_back(&c);
      send_header(c, kVsockOpResponse);
    } else {
      Conn tmp;
      tmp.guest_port = h.dst_port;
      tmp.host_port = h.src_port;
      send_header(tmp, kVsockOpRst);
    }
    return;
  }
  if (it == conns_.end()) return;
  Conn& c = it->second;
  c.peer_buf_alloc = h.buf_alloc;
  c.peer_fwd_cnt = h.fwd_cnt;
  switch (h.op) {
    case kVsockOpResponse:
      c.established = true;
      break;
    case kVsockOpRw:
      if (sink) {
        c.total_received += sunk_;
        c.fwd_cnt += sunk_;
        if (auto_credit && buf_alloc_ - (c.fwd_cnt - c.last_fwd_cnt_sent) < kVsockMaxPayload) {
          send_header(c, kVsockOpCreditUpdate);
        }
      } else {
        c.total_received += p.payload.size();
        c.received.insert(c.received.end(), p.payload.begin(), p.payload.end());
      }
      break;
    case kVsockOpShutdown:
      c.peer_shutdown |= h.flags;
      break;
    case kVsockOpRst:
      c.reset = true;
      c.established = false;
      break;
    case kVsockOpCreditRequest:
      send_header(c, kVsockOpCreditUpdate);
      break;
    default:
      break;
  }
}

VsockGuest::Conn& VsockGuest::connect(uint32_t guest_port, uint32_t host_port) {
  Conn& c = conns_[{guest_port, host_port}];
  c = Conn{};
  c.guest_port = guest_port;
  c.host_port = host_port;
  send_header(c, kVsockOpRequest);
  return c;
}

size_t VsockGuest::write(Conn& c, const uint8_t* data, size_t len) {
  size_t done = 0;
  while (done < len) {
    uint32_t in_flight = c.tx_cnt - c.peer_fwd_cnt;
    uint32_t credit = in_flight >= c.peer_buf_alloc ? 0 : c.peer_buf_alloc - in_flight;
    uint32_t n = static_cast<uint32_t>(std::min<size_t>({len - done, credit, kVsockMaxPayload}));
    if (n == 0) break;
    send_header(c, kVsockOpRw, 0, data + done, n);
    done += n;
  }
  return done;
}

std::vector<uint8_t> VsockGuest::read(Conn& c, size_t max) {
  size_t n = std::min(max, c.received.size());
  std::vector<uint8_t> out(c.received.begin(), c.received.begin() + static_cast<ptrdiff_t>(n));
  c.received.erase(c.received.begin(), c.received.begin() + static_cast<ptrdiff_t>(n));
  c.fwd_cnt += static_cast<uint32_t>(n);
  // Linux (virtio_transport_stream_do_dequeue): update the peer once the
  // space it believes we have drops below one maximum packet.
  uint32_t free_space = buf_alloc_ - (c.fwd_cnt - c.last_fwd_cnt_sent);
  if (auto_credit && n > 0 && c.established && free_space < kVsockMaxPayload)
    send_header(c, kVsockOpCreditUpdate);
  return out;
}

size_t VsockGuest::write_bulk(Conn& c, size_t len) {
  if (bulk_payload_.raw() == 0) {
    bulk_payload_ = allocator_.alloc(kVsockMaxPayload, 8);
    std::vector<uint8_t> fill(kVsockMaxPayload, 0x42);
    memory_.write(bulk_payload_, fill);
  }
  size_t done = 0;
  reclaim_tx();
  while (done < len && tx_.in_flight() < 200) {
    uint32_t in_flight = c.tx_cnt - c.peer_fwd_cnt;
    uint32_t credit = in_flight >= c.peer_buf_alloc ? 0 : c.peer_buf_alloc - in_flight;
    uint32_t n = static_cast<uint32_t>(std::min<size_t>({len - done, credit, kVsockMaxPayload}));
    if (n == 0) break;
    if (tx_free_.empty()) {
      tx_free_.emplace_back(allocator_.alloc(sizeof(VsockHeader), 8),
                            allocator_.alloc(kVsockMaxPayload, 8));
    }
    GuestAddress hdr_addr = tx_free_.front().first;
    GuestAddress data_addr = tx_free_.front().second;
    tx_free_.pop_front();
    VsockHeader h = outgoing_header(c, kVsockOpRw, 0, n);
    memory_.write_obj(hdr_addr, h);
    uint16_t head = tx_.add_chain(
        {Buffer{hdr_addr, sizeof(VsockHeader), false}, Buffer{bulk_payload_, n, false}});
    tx_heads_[head] = {hdr_addr, data_addr};
    tx_pending_kick_ = true;
    done += n;
  }
  return done;
}

void VsockGuest::shutdown(Conn& c, uint32_t flags) { send_header(c, kVsockOpShutdown, flags); }

void VsockGuest::rst(Conn& c) {
  send_header(c, kVsockOpRst);
  c.established = false;
}

}  // namespace ember::vmm::virtio::testing
