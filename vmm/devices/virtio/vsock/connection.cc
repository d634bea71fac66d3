#include "vmm/devices/virtio/vsock/connection.h"

#include <limits.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace ember::vmm::virtio {
namespace {

// sendmsg with MSG_NOSIGNAL: a host peer that went away must give EPIPE, not
// kill the VMM with SIGPIPE.
ssize_t send_iov(int fd, iovec* iov, size_t count) {
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = std::min<size_t>(count, IOV_MAX);
  ssize_t n;
  do {
    n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  return n;
}

}  // namespace

VsockConnection::VsockConnection(common::UniqueFd stream, uint64_t guest_cid, uint32_t local_port,
                                 uint32_t peer_port, State state, VsockCounters& counters)
    : stream_(std::move(stream)),
      guest_cid_(guest_cid),
      local_port_(local_port),
      peer_port_(peer_port),
      state_(state),
      counters_(counters) {}

std::unique_ptr<VsockConnection> VsockConnection::local_init(common::UniqueFd stream,
                                                             uint64_t guest_cid,
                                                             uint32_t local_port,
                                                             uint32_t peer_port,
                                                             VsockCounters& counters) {
  std::unique_ptr<VsockConnection> c(new VsockConnection(std::move(stream), guest_cid, local_port,
                                                         peer_port, State::kLocalInit, counters));
  c->pending_ = kPendRequest;
  return c;
}

std::unique_ptr<VsockConnection> VsockConnection::peer_init(common::UniqueFd stream,
                                                            uint64_t guest_cid,
                                                            const VsockHeader& request,
                                                            VsockCounters& counters) {
  std::unique_ptr<VsockConnection> c(new VsockConnection(std::move(stream), guest_cid,
                                                         request.dst_port, request.src_port,
                                                         State::kPeerInit, counters));
  c->peer_buf_alloc_ = request.buf_alloc;
  c->peer_fwd_cnt_ = request.fwd_cnt;
  c->pending_ = kPendResponse;
  return c;
}

uint32_t VsockConnection::peer_credit() const {
  uint32_t in_flight = tx_cnt_ - peer_fwd_cnt_;
  return in_flight >= peer_buf_alloc_ ? 0 : peer_buf_alloc_ - in_flight;
}

// The host socket hung up but may still hold bytes for the guest: keep
// reading it without epoll's help until EOF.
bool VsockConnection::draining() const {
  return state_ == State::kEstablished && host_hup_ && !host_eof_ && !peer_shut_rcv_;
}

bool VsockConnection::wants_watch() const {
  return !host_hup_ && !finished_ && state_ != State::kKilled && state_ != State::kLocalClosed;
}

uint32_t VsockConnection::wanted_events() const {
  if (!wants_watch()) return 0;
  uint32_t events = 0;
  if (!host_prefix_.empty() || tx_head_ < tx_buf_.size()) events |= EPOLLOUT;
  if (state_ == State::kEstablished && !host_eof_ && !peer_shut_rcv_ && !(pending_ & kPendRw) &&
      peer_credit() > 0) {
    events |= EPOLLIN;
  }
  return events;
}

void VsockConnection::kill() {
  if (finished_) return;
  if (state_ == State::kLocalInit && (pending_ & kPendRequest)) {
    // The guest never heard of it: nothing to reset.
    state_ = State::kKilled;
    pending_ = 0;
    finished_ = true;
    return;
  }
  if (state_ != State::kKilled) counters_.conns_killed.inc();
  state_ = State::kKilled;
  pending_ = kPendRst;
  expiry_ns_ = 0;
  host_prefix_.clear();
  tx_buf_.clear();
  tx_head_ = 0;
}

void VsockConnection::init_header(VsockHeader& h) {
  h = VsockHeader{};
  h.src_cid = kVsockHostCid;
  h.dst_cid = guest_cid_;
  h.src_port = local_port_;
  h.dst_port = peer_port_;
  h.type = kVsockTypeStream;
  h.buf_alloc = kVsockConnBufAlloc;
  h.fwd_cnt = fwd_cnt_;
  last_fwd_cnt_sent_ = fwd_cnt_;
}

void VsockConnection::on_packet(const TxPacket& packet, uint64_t now_ns) {
  const VsockHeader& h = packet.header;
  if (finished_) return;
  peer_buf_alloc_ = h.buf_alloc;
  peer_fwd_cnt_ = h.fwd_cnt;
  credit_request_sent_ = false;
  if (state_ == State::kKilled) return;  // only our RST is left to send

  switch (h.op) {
    case kVsockOpRst:
      // The guest is done with it; no RST back (virtio 1.2 §5.10.6.5).
      state_ = State::kKilled;
      pending_ = 0;
      finished_ = true;
      return;
    case kVsockOpResponse:
      if (state_ == State::kLocalInit) {
        state_ = State::kEstablished;
        expiry_ns_ = 0;
        host_prefix_ = "OK " + std::to_string(local_port_) + "\n";
        flush_to_host(now_ns);
      }
      break;
    case kVsockOpRw:
      if (state_ == State::kEstablished && !peer_shut_send_ && h.len > 0) {
        if (host_hup_) {
          // Like EPIPE: the host reader is gone.
          kill();
          return;
        }
        send_to_host(packet, now_ns);
      }
      break;
    case kVsockOpShutdown:
      if (state_ == State::kEstablished || state_ == State::kLocalClosed) {
        peer_shut_rcv_ = peer_shut_rcv_ || (h.flags & kVsockShutdownRcv);
        peer_shut_send_ = peer_shut_send_ || (h.flags & kVsockShutdownSend);
        apply_peer_shutdowns(now_ns);
      }
      break;
    case kVsockOpCreditRequest:
      if (state_ == State::kEstablished || state_ == State::kPeerInit)
        pending_ |= kPendCreditUpdate;
      break;
    case kVsockOpCreditUpdate:
    default:
      break;
  }
  if (draining()) pending_ |= kPendRw;
}

void VsockConnection::apply_peer_shutdowns(uint64_t now_ns) {
  bool flushed = host_prefix_.empty() && tx_head_ == tx_buf_.size();
  if (state_ == State::kLocalClosed) {
    if (peer_shut_rcv_ && peer_shut_send_) kill();
    return;
  }
  if (peer_shut_rcv_ && peer_shut_send_) {
    if (flushed) {
      kill();
    } else if (expiry_ns_ == 0) {
      // Give the host socket 2 s to take the rest, then RST anyway.
      expiry_ns_ = now_ns + kVsockTimeoutNs;
    }
    return;
  }
  if (peer_shut_send_ && flushed && !host_write_shut_ && !host_hup_) {
    // The guest sends no more: let the host reader see EOF.
    ::shutdown(stream_.get(), SHUT_WR);
    host_write_shut_ = true;
  }
}

void VsockConnection::send_to_host(const TxPacket& packet, uint64_t now_ns) {
  uint32_t len = packet.header.len;
  // virtio 1.2 §5.10.6.3: the driver may not send more than we advertised.
  if (static_cast<uint32_t>(rx_cnt_ - fwd_cnt_) + uint64_t(len) > kVsockConnBufAlloc) {
    kill();
    return;
  }
  rx_cnt_ += len;
  ChainCursor payload = packet.payload;
  uint32_t written = 0;
  if (host_prefix_.empty() && tx_head_ == tx_buf_.size() && !host_hup_) {
    iov_.clear();
    payload.iovecs(len, iov_);
    ssize_t n = send_iov(stream_.get(), iov_.data(), iov_.size());
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      counters_.tx_write_fails.inc();
      kill();
      return;
    }
    written = n > 0 ? static_cast<uint32_t>(n) : 0;
    fwd_cnt_ += written;
    counters_.tx_bytes_count.inc(written);
    payload.skip(written);
  }
  if (written < len) {
    if (tx_head_ == tx_buf_.size()) {
      tx_buf_.clear();
      tx_head_ = 0;
    }
    size_t at = tx_buf_.size();
    tx_buf_.resize(at + (len - written));
    payload.read(std::span<uint8_t>(tx_buf_.data() + at, len - written));
  }
  after_forward(now_ns);
}

void VsockConnection::flush_to_host(uint64_t now_ns) {
  while (!host_prefix_.empty()) {
    ssize_t n = ::send(stream_.get(), host_prefix_.data(), host_prefix_.size(),
                       MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      counters_.tx_flush_fails.inc();
      kill();
      return;
    }
    host_prefix_.erase(0, static_cast<size_t>(n));
  }
  while (tx_head_ < tx_buf_.size()) {
    iovec v{tx_buf_.data() + tx_head_, tx_buf_.size() - tx_head_};
    ssize_t n = send_iov(stream_.get(), &v, 1);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      counters_.tx_flush_fails.inc();
      kill();
      return;
    }
    tx_head_ += static_cast<size_t>(n);
    fwd_cnt_ += static_cast<uint32_t>(n);
    counters_.tx_bytes_count.inc(static_cast<uint64_t>(n));
  }
  if (tx_head_ == tx_buf_.size()) {
    tx_buf_.clear();
    tx_head_ = 0;
  } else if (tx_head_ > kVsockConnBufAlloc / 2) {
    tx_buf_.erase(tx_buf_.begin(), tx_buf_.begin() + static_cast<ptrdiff_t>(tx_head_));
    tx_head_ = 0;
  }
  after_forward(now_ns);
}

void VsockConnection::after_forward(uint64_t now_ns) {
  if (state_ == State::kKilled) return;
  // Proactive CREDIT_UPDATE: the guest stalls once it thinks our buffer is
  // full, and Linux does not always ask (CREDIT_REQUEST) before stalling.
  uint32_t guest_view_used = rx_cnt_ - last_fwd_cnt_sent_;
  uint32_t guest_view_free =
      guest_view_used >= kVsockConnBufAlloc ? 0 : kVsockConnBufAlloc - guest_view_used;
  if (guest_view_free < kVsockCreditUpdateThreshold && fwd_cnt_ != last_fwd_cnt_sent_) {
    pending_ |= kPendCreditUpdate;
  }
  if (peer_shut_send_ || peer_shut_rcv_) apply_peer_shutdowns(now_ns);
}

void VsockConnection::on_host_event(uint32_t events, uint64_t now_ns) {
  if (finished_ || state_ == State::kKilled) return;
  if ((events & EPOLLERR) && !(events & EPOLLIN)) {
    counters_.conn_event_fails.inc();
    kill();
    return;
  }
  if (events & EPOLLOUT) flush_to_host(now_ns);
  if (state_ == State::kKilled) return;
  if ((events & EPOLLIN) && state_ == State::kEstablished && !host_eof_ && !peer_shut_rcv_)
    pending_ |= kPendRw;
  if (events & (EPOLLHUP | EPOLLERR)) {
    if (state_ == State::kLocalInit || state_ == State::kPeerInit) {
      // The host side gave up before the handshake finished.
      kill();
      return;
    }
    host_hup_ = true;
    // Nothing can be written to a hung-up socket any more.
    host_prefix_.clear();
    tx_buf_.clear();
    tx_head_ = 0;
    if (draining()) {
      pending_ |= kPendRw;
    } else if (state_ == State::kEstablished) {
      pending_shutdown_flags_ = kVsockShutdownRcv | kVsockShutdownSend;
      pending_ |= kPendShutdown;
    }
    if (peer_shut_rcv_ && peer_shut_send_) kill();
  }
}

void VsockConnection::on_expired(uint64_t now_ns) {
  if (expiry_ns_ == 0 || now_ns < expiry_ns_ || finished_) return;
  expiry_ns_ = 0;
  // No RESPONSE to our REQUEST, no RST after our SHUTDOWN, or a host socket
  // that would not take the last bytes: give up.
  kill();
}

bool VsockConnection::fill_rx(VsockHeader& h, ChainCursor& payload, uint64_t now_ns) {
  if (finished_) {
    pending_ = 0;
    return false;
  }
  if (pending_ & kPendRst) {
    init_header(h);
    h.op = kVsockOpRst;
    pending_ = 0;
    finished_ = true;
    return true;
  }
  if (pending_ & kPendResponse) {
    pending_ &= ~kPendResponse;
    init_header(h);
    h.op = kVsockOpResponse;
    state_ = State::kEstablished;
    return true;
  }
  if (pending_ & kPendRequest) {
    pending_ &= ~kPendRequest;
    init_header(h);
    h.op = kVsockOpRequest;
    expiry_ns_ = now_ns + kVsockTimeoutNs;
    return true;
  }
  if (pending_ & kPendRw) {
    if (state_ != State::kEstablished || host_eof_ || peer_shut_rcv_) {
      pending_ &= ~kPendRw;
    } else if (peer_credit() == 0) {
      pending_ &= ~kPendRw;
      if (!credit_request_sent_) {
        credit_request_sent_ = true;
        init_header(h);
        h.op = kVsockOpCreditRequest;
        return true;
      }
    } else if (payload.remaining() == 0) {
      // An RX buffer with room for a header only: carry our credit in it
      // rather than leave the guest's buffer unused forever.
      init_header(h);
      h.op = kVsockOpCreditUpdate;
      pending_ &= ~kPendCreditUpdate;
      return true;
    } else {
      uint64_t max = std::min<uint64_t>({peer_credit(), payload.remaining(), kVsockMaxPayload});
      iov_.clear();
      payload.iovecs(max, iov_);
      ssize_t n;
      do {
        n = ::readv(stream_.get(), iov_.data(),
                    static_cast<int>(std::min<size_t>(iov_.size(), IOV_MAX)));
      } while (n < 0 && errno == EINTR);
      if (n > 0) {
        init_header(h);
        h.op = kVsockOpRw;
        h.len = static_cast<uint32_t>(n);
        tx_cnt_ += static_cast<uint32_t>(n);
        counters_.rx_bytes_count.inc(static_cast<uint64_t>(n));
        pending_ &= ~kPendCreditUpdate;  // this header carries fwd_cnt already
        return true;                     // kPendRw stays: there may be more
      }
      pending_ &= ~kPendRw;
      if (n == 0) {
        host_eof_ = true;
        init_header(h);
        h.op = kVsockOpShutdown;
        h.flags = kVsockShutdownSend;
        if (host_hup_) {
          h.flags |= kVsockShutdownRcv;
          state_ = State::kLocalClosed;
          expiry_ns_ = now_ns + kVsockTimeoutNs;
          pending_ &= ~kPendShutdown;
        }
        return true;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        counters_.rx_read_fails.inc();
        kill();
        pending_ = 0;
        init_header(h);
        h.op = kVsockOpRst;
        finished_ = true;
        return true;
      }
    }
  }
  if (pending_ & kPendShutdown) {
    pending_ &= ~kPendShutdown;
    init_header(h);
    h.op = kVsockOpShutdown;
    h.flags = pending_shutdown_flags_;
    if ((h.flags & kVsockShutdownRcv) && (h.flags & kVsockShutdownSend)) {
      state_ = State::kLocalClosed;
      expiry_ns_ = now_ns + kVsockTimeoutNs;
    }
    return true;
  }
  if (pending_ & kPendCreditUpdate) {
    pending_ &= ~kPendCreditUpdate;
    init_header(h);
    h.op = kVsockOpCreditUpdate;
    return true;
  }
  return false;
}

}  // namespace ember::vmm::virtio
