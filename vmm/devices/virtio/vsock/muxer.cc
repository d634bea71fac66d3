#include "vmm/devices/virtio/vsock/muxer.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

#include "vmm/common/error.h"

namespace ember::vmm::virtio {
namespace {

bool fill_sockaddr(const std::string& path, sockaddr_un& addr) {
  addr = sockaddr_un{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) return false;
  std::memcpy(addr.sun_path, path.data(), path.size());
  return true;
}

// "CONNECT <port>" (the word in any case, as Firecracker accepts it).
bool parse_connect(const std::string& line, uint32_t& port) {
  size_t i = 0;
  auto skip_space = [&] {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
  };
  skip_space();
  static constexpr char kWord[] = "connect";
  for (size_t k = 0; k < sizeof kWord - 1; ++k, ++i) {
    if (i >= line.size() || std::tolower(static_cast<unsigned char>(line[i])) != kWord[k])
      return false;
  }
  if (i >= line.size() || (line[i] != ' ' && line[i] != '\t')) return false;
  skip_space();
  uint64_t value = 0;
  size_t digits = 0;
  while (i < line.size() && std::isdigit(static_cast<unsigned char>(line[i]))) {
    value = value * 10 + static_cast<uint64_t>(line[i] - '0');
    if (value > UINT32_MAX) return false;
    ++i;
    ++digits;
  }
  skip_space();
  if (digits == 0 || i != line.size()) return false;
  port = static_cast<uint32_t>(value);
  return true;
}

}  // namespace

uint64_t VsockMuxer::now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000 + uint64_t(ts.tv_nsec);
}

VsockMuxer::VsockMuxer(uint64_t guest_cid, std::string uds_path, Logger& logger,
                       VsockCounters& counters)
    : guest_cid_(guest_cid), uds_path_(std::move(uds_path)), logger_(logger), counters_(counters) {
  sockaddr_un addr;
  if (!fill_sockaddr(uds_path_, addr)) {
    throw common::Error("bind vsock socket \"" + uds_path_ + "\": path is empty or longer than " +
                        std::to_string(sizeof addr.sun_path - 1) + " bytes");
  }
  listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!listener_) common::throw_errno("create vsock listener socket");
  // bind() fails with EADDRINUSE if the path exists, as Firecracker does.
  if (::bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    common::throw_errno("bind vsock socket " + uds_path_);
  }
  if (::listen(listener_.get(), 128) < 0)
    common::throw_errno("listen on vsock socket " + uds_path_);
  timer_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!timer_) common::throw_errno("create vsock timerfd");
}

VsockMuxer::~VsockMuxer() {
  stop();
  ::unlink(uds_path_.c_str());
}

void VsockMuxer::start(common::EventLoop& loop, Hooks hooks) {
  loop_ = &loop;
  hooks_ = std::move(hooks);
  loop_->add(listener_.get(), EPOLLIN, [this](uint32_t) {
    auto guard = hooks_.lock();
    on_listener();
  });
  loop_->add(timer_.get(), EPOLLIN, [this](uint32_t) {
    auto guard = hooks_.lock();
    on_timer();
  });
}

void VsockMuxer::stop() {
  if (!loop_) return;
  for (auto& [k, e] : conns_) {
    if (e.watched) loop_->remove(e.conn->fd());
  }
  for (auto& [fd, h] : handshakes_) loop_->remove(fd);
  loop_->remove(listener_.get());
  loop_->remove(timer_.get());
  conns_.clear();
  local_ports_.clear();
  handshakes_.clear();
  rxq_.clear();
  stray_rsts_.clear();
  killq_.clear();
  armed_for_ = 0;
  itimerspec off{};
  ::timerfd_settime(timer_.get(), 0, &off, nullptr);
  loop_ = nullptr;
  paused_at_ = 0;
}

void VsockMuxer::pause() {
  if (!loop_ || paused()) return;
  paused_at_ = now_ns();
  armed_for_ = 0;
  itimerspec off{};
  ::timerfd_settime(timer_.get(), 0, &off, nullptr);
}

void VsockMuxer::resume() {
  if (!paused()) return;
  // The 2 s timeouts measure how long the guest takes to answer; a paused
  // guest cannot, so the pause does not count. Shifting every deadline by
  // the same amount keeps killq_ sorted and its stale entries stale.
  uint64_t delta = now_ns() - paused_at_;
  paused_at_ = 0;
  for (auto& [expiry, k] : killq_) expiry += delta;
  for (auto& [k, e] : conns_) {
    if (e.killq_expiry != 0) e.killq_expiry += delta;
    e.conn->postpone_expiry(delta);
  }
  arm_timer();
  notify_rx();
}

void VsockMuxer::notify_rx() {
  if (!paused() && has_pending_rx() && hooks_.rx_ready) hooks_.rx_ready();
}

void VsockMuxer::on_listener() {
  for (;;) {
    common::UniqueFd client(
        ::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!client) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        counters_.muxer_event_fails.inc();
        LOG_WARN(logger_,
                 "vsock: accept on " + uds_path_ + " failed: " + common::errno_text(errno));
      }
      return;
    }
    if (conns_.size() + handshakes_.size() >= kVsockMaxConnections) {
      LOG_WARN(logger_, "vsock: connection limit reached, refusing a host connection");
      continue;  // closed by UniqueFd
    }
    int fd = client.get();
    handshakes_.emplace(fd, Handshake{std::move(client), {}});
    loop_->add(fd, EPOLLIN, [this, fd](uint32_t) {
      auto guard = hooks_.lock();
      on_handshake(fd);
    });
  }
}

void VsockMuxer::drop_handshake(int fd) {
  loop_->remove(fd);
  handshakes_.erase(fd);
}

void VsockMuxer::on_handshake(int fd) {
  auto it = handshakes_.find(fd);
  if (it == handshakes_.end()) return;
  Handshake& h = it->second;
  // Peek, then consume no further than the newline: bytes after it belong
  // to the stream and must reach the guest.
  char buf[kVsockMaxHandshakeLine];
  size_t room = kVsockMaxHandshakeLine - h.line.size();
  ssize_t n = ::recv(fd, buf, room, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  if (n <= 0) {
    drop_handshake(fd);
    return;
  }
  const char* nl = static_cast<const char*>(std::memchr(buf, '\n', static_cast<size_t>(n)));
  size_t take = nl ? static_cast<size_t>(nl - buf) + 1 : static_cast<size_t>(n);
  ssize_t got = ::recv(fd, buf, take, MSG_DONTWAIT);
  if (got != static_cast<ssize_t>(take)) {
    drop_handshake(fd);
    return;
  }
  h.line.append(buf, nl ? take - 1 : take);
  if (!nl) {
    if (h.line.size() >= kVsockMaxHandshakeLine) {
      LOG_WARN(logger_, "vsock: host connection sent no CONNECT line within 32 bytes");
      drop_handshake(fd);
    }
    return;
  }
  uint32_t port = 0;
  if (!parse_connect(h.line, port)) {
    LOG_WARN(logger_, "vsock: bad handshake from host connection: \"" + h.line + "\"");
    drop_handshake(fd);
    return;
  }
  uint32_t local_port = 0;
  if (!allocate_local_port(port, local_port)) {
    drop_handshake(fd);
    return;
  }
  common::UniqueFd stream = std::move(h.fd);
  loop_->remove(fd);
  handshakes_.erase(it);
  add_connection(
      VsockConnection::local_init(std::move(stream), guest_cid_, local_port, port, counters_));
  notify_rx();
}

bool VsockMuxer::allocate_local_port(uint32_t peer_port, uint32_t& out) {
  for (size_t tries = 0; tries <= kVsockMaxConnections + 1; ++tries) {
    uint32_t p = next_local_port_;
    next_local_port_ =
        next_local_port_ + 1 >= (1u << 31) ? kVsockFirstLocalPort : next_local_port_ + 1;
    if (!local_ports_.count(p) && !conns_.count(key(p, peer_port))) {
      out = p;
      return true;
    }
  }
  return false;
}

void VsockMuxer::add_connection(std::unique_ptr<VsockConnection> conn) {
  uint64_t k = key(conn->local_port(), conn->peer_port());
  int fd = conn->fd();
  bool host_initiated = conn->state() == VsockConnection::State::kLocalInit;
  if (host_initiated) local_ports_.insert(conn->local_port());
  Entry& e = conns_[k];
  e.host_initiated = host_initiated;
  e.conn = std::move(conn);
  // Registered with no interest at first: HUP and ERR are reported anyway.
  loop_->add(fd, 0, [this, k](uint32_t events) {
    auto guard = hooks_.lock();
    on_connection_event(k, events);
  });
  e.watched = true;
  e.events = 0;
  counters_.conns_added.inc();
  sync(k);
}

void VsockMuxer::remove(uint64_t k) {
  auto it = conns_.find(k);
  if (it == conns_.end()) return;
  if (it->second.watched) loop_->remove(it->second.conn->fd());
  if (it->second.host_initiated) local_ports_.erase(it->second.conn->local_port());
  conns_.erase(it);
  counters_.conns_removed.inc();
}

void VsockMuxer::sync(uint64_t k) {
  auto it = conns_.find(k);
  if (it == conns_.end()) return;
  Entry& e = it->second;
  VsockConnection& c = *e.conn;
  if (c.finished()) {
    remove(k);
    return;
  }
  if (c.has_pending_rx() && !e.queued) {
    rxq_.push_back(k);
    e.queued = true;
  }
  if (e.watched) {
    if (!c.wants_watch()) {
      loop_->remove(c.fd());
      e.watched = false;
    } else if (uint32_t wanted = c.wanted_events(); wanted != e.events) {
      loop_->modify(c.fd(), wanted);
      e.events = wanted;
    }
  }
  if (c.expiry_ns() != 0 && c.expiry_ns() != e.killq_expiry) {
    e.killq_expiry = c.expiry_ns();
    killq_.emplace_back(c.expiry_ns(), k);
    arm_timer();
  }
}

void VsockMuxer::arm_timer() {
  if (killq_.empty() || paused()) return;
  uint64_t when = killq_.front().first;
  if (armed_for_ != 0 && armed_for_ <= when) return;
  itimerspec spec{};
  spec.it_value.tv_sec = static_cast<time_t>(when / 1'000'000'000);
  spec.it_value.tv_nsec = static_cast<long>(when % 1'000'000'000);
  if (::timerfd_settime(timer_.get(), TFD_TIMER_ABSTIME, &spec, nullptr) == 0) armed_for_ = when;
}

void VsockMuxer::on_timer() {
  uint64_t expirations = 0;
  (void)::read(timer_.get(), &expirations, sizeof expirations);
  if (paused()) return;  // resume() re-arms
  armed_for_ = 0;
  uint64_t now = now_ns();
  while (!killq_.empty() && killq_.front().first <= now) {
    auto [expiry, k] = killq_.front();
    killq_.pop_front();
    auto it = conns_.find(k);
    if (it == conns_.end() || it->second.conn->expiry_ns() != expiry) continue;  // stale entry
    it->second.killq_expiry = 0;
    it->second.conn->on_expired(now);
    sync(k);
  }
  arm_timer();
  notify_rx();
}

void VsockMuxer::on_connection_event(uint64_t k, uint32_t events) {
  auto it = conns_.find(k);
  if (it == conns_.end()) return;
  it->second.conn->on_host_event(events, now_ns());
  sync(k);
  notify_rx();
}

void VsockMuxer::queue_rst(const VsockHeader& to) {
  if (stray_rsts_.size() >= kVsockMaxStrayRsts) return;  // the guest will time out instead
  VsockHeader h;
  h.src_cid = kVsockHostCid;
  h.dst_cid = guest_cid_;
  h.src_port = to.dst_port;
  h.dst_port = to.src_port;
  h.type = kVsockTypeStream;
  h.op = kVsockOpRst;
  stray_rsts_.push_back(h);
}

void VsockMuxer::on_tx_packet(const TxPacket& packet) {
  const VsockHeader& h = packet.header;
  if (h.src_cid != guest_cid_ || h.dst_cid != kVsockHostCid) {
    LOG_DEBUG(logger_, "vsock: dropping guest packet " + describe(h));
    return;
  }
  if (h.type != kVsockTypeStream) {
    if (h.op != kVsockOpRst) queue_rst(h);
    return;
  }
  uint64_t k = key(h.dst_port, h.src_port);
  if (conns_.count(k)) {
    conns_[k].conn->on_packet(packet, now_ns());
    sync(k);
    return;
  }
  if (h.op != kVsockOpRequest) {
    if (h.op != kVsockOpRst) queue_rst(h);
    return;
  }
  // Guest-initiated: connect to "<uds_path>_<port>".
  if (conns_.size() + handshakes_.size() >= kVsockMaxConnections) {
    LOG_WARN(logger_, "vsock: connection limit reached, refusing guest connection to port " +
                          std::to_string(h.dst_port));
    queue_rst(h);
    return;
  }
  std::string path = uds_path_ + "_" + std::to_string(h.dst_port);
  sockaddr_un addr;
  common::UniqueFd stream(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  int rc = -1;
  if (stream && fill_sockaddr(path, addr)) {
    do {
      rc = ::connect(stream.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    } while (rc < 0 && errno == EINTR);
  }
  if (rc < 0) {
    LOG_DEBUG(logger_,
              "vsock: guest connection to " + path + " refused: " + common::errno_text(errno));
    queue_rst(h);
    return;
  }
  add_connection(VsockConnection::peer_init(std::move(stream), guest_cid_, h, counters_));
}

uint32_t VsockMuxer::fill_rx(const GuestMemory& memory, const DescriptorChain& chain) {
  ChainCursor writer(memory, chain.writable());
  if (writer.remaining() < sizeof(VsockHeader)) return 0;
  auto emit = [&](const VsockHeader& h) {
    writer.write(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&h), sizeof h));
    return static_cast<uint32_t>(sizeof h + h.len);
  };
  if (!stray_rsts_.empty()) {
    VsockHeader h = stray_rsts_.front();
    stray_rsts_.pop_front();
    return emit(h);
  }
  uint64_t now = now_ns();
  while (!rxq_.empty()) {
    uint64_t k = rxq_.front();
    rxq_.pop_front();
    auto it = conns_.find(k);
    if (it == conns_.end()) continue;
    it->second.queued = false;
    ChainCursor payload = writer;
    payload.skip(sizeof(VsockHeader));
    VsockHeader h;
    bool produced = it->second.conn->fill_rx(h, payload, now);
    sync(k);  // may re-queue it behind the others (round robin), or remove it
    if (produced) return emit(h);
  }
  return 0;
}

}  // namespace ember::vmm::virtio
