#include "vmm/devices/virtio/net/net_device.h"

#include <linux/if_tun.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace ember::vmm::virtio {
namespace {

uint64_t now_us() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000 + uint64_t(ts.tv_nsec) / 1000;
}

uint64_t bit(unsigned b) { return uint64_t(1) << b; }

// virtio 1.2 §5.1.4: mac[6], status, max_virtqueue_pairs, mtu.
#pragma pack(push, 1)
struct NetConfigSpace {
  uint8_t mac[6];
  uint16_t status;
  uint16_t max_virtqueue_pairs;
  uint16_t mtu;
};
#pragma pack(pop)
static_assert(sizeof(NetConfigSpace) == 12);

// Frames handled per event before yielding to the rest of the loop.
constexpr int kMaxFramesPerEvent = 256;

}  // namespace

std::optional<std::array<uint8_t, 6>> parse_mac(const std::string& text) {
  std::array<uint8_t, 6> mac{};
  if (text.size() != 17) return std::nullopt;
  for (int i = 0; i < 6; ++i) {
    if (i > 0 && text[i * 3 - 1] != ':') return std::nullopt;
    unsigned value = 0;
    for (int k = 0; k < 2; ++k) {
      char c = text[i * 3 + k];
      value <<= 4;
      if (c >= '0' && c <= '9')
        value |= unsigned(c - '0');
      else if (c >= 'a' && c <= 'f')
        value |= unsigned(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        value |= unsigned(c - 'A' + 10);
      else
        return std::nullopt;
    }
    mac[i] = static_cast<uint8_t>(value);
  }
  return mac;
}

#define NET_COUNTER(name) name(m, "net_" + iface, "net", #name)
NetDevice::Counters::Counters(Metrics& m, const std::string& iface)
    : NET_COUNTER(activate_fails),
      NET_COUNTER(cfg_fails),
      NET_COUNTER(no_rx_avail_buffer),
      NET_COUNTER(no_tx_avail_buffer),
      NET_COUNTER(event_fails),
      NET_COUNTER(rx_queue_event_count),
      NET_COUNTER(rx_event_rate_limiter_count),
      NET_COUNTER(rx_rate_limiter_throttled),
      NET_COUNTER(rx_tap_event_count),
      NET_COUNTER(rx_bytes_count),
      NET_COUNTER(rx_packets_count),
      NET_COUNTER(rx_fails),
      NET_COUNTER(rx_count),
      NET_COUNTER(tap_read_fails),
      NET_COUNTER(tap_write_fails),
      NET_COUNTER(tx_bytes_count),
      NET_COUNTER(tx_malformed_frames),
      NET_COUNTER(tx_fails),
      NET_COUNTER(tx_count),
      NET_COUNTER(tx_packets_count),
      NET_COUNTER(tx_queue_event_count),
      NET_COUNTER(tx_rate_limiter_event_count),
      NET_COUNTER(tx_rate_limiter_throttled),
      NET_COUNTER(tx_spoofed_mac_count),
      NET_COUNTER(tx_remaining_reqs_count),
      NET_COUNTER(tap_write_agg) {}
#undef NET_COUNTER

NetDevice::NetDevice(const NetworkInterfaceConfig& config, Logger& logger, Metrics& metrics)
    : DeviceBase(logger, "net " + config.iface_id),
      config_(config),
      tap_(Tap::open(config.host_dev_name)),
      rx_limiter_(config.rx_rate_limiter.value_or(RateLimiterConfig{})),
      tx_limiter_(config.tx_rate_limiter.value_or(RateLimiterConfig{})),
      counters_(metrics, config.iface_id),
      rx_frame_(kNetMaxFrame) {
  if (config.guest_mac) {
    mac_ = parse_mac(*config.guest_mac);
    if (!mac_) {
      throw common::Error("network interface \"" + config.iface_id + "\": invalid guest_mac \"" +
                          *config.guest_mac + "\"");
    }
  }
}

NetDevice::~NetDevice() { unwatch_all(); }

uint64_t NetDevice::available_features() const {
  uint64_t f = bit(kFeatureVersion1) | bit(kFeatureEventIdx) | bit(kFeatureIndirectDesc) |
               bit(kNetFeatureCsum) | bit(kNetFeatureGuestCsum) | bit(kNetFeatureGuestTso4) |
               bit(kNetFeatureGuestTso6) | bit(kNetFeatureGuestUfo) | bit(kNetFeatureHostTso4) |
               bit(kNetFeatureHostTso6) | bit(kNetFeatureHostUfo) | bit(kNetFeatureMrgRxbuf);
  if (mac_) f |= bit(kNetFeatureMac);
  if (config_.mtu) f |= bit(kNetFeatureMtu);
  return f;
}

void NetDevice::read_config(uint64_t offset, std::span<uint8_t> data) const {
  NetConfigSpace space{};
  if (mac_) std::memcpy(space.mac, mac_->data(), 6);
  space.max_virtqueue_pairs = 1;
  space.mtu = config_.mtu.value_or(0);
  std::fill(data.begin(), data.end(), 0);
  if (offset >= sizeof space) return;
  std::memcpy(data.data(), reinterpret_cast<const uint8_t*>(&space) + offset,
              std::min<uint64_t>(data.size(), sizeof space - offset));
}

void NetDevice::write_config(uint64_t, std::span<const uint8_t>) {
  // With VIRTIO_F_VERSION_1 and no CTRL_MAC_ADDR every field is read-only.
  counters_.cfg_fails.inc();
}

void NetDevice::on_activate() {
  // Let the tap hand us what the guest said it can take (§5.1.6.4).
  unsigned offload = 0;
  if (acked(kNetFeatureGuestCsum)) offload |= TUN_F_CSUM;
  if (acked(kNetFeatureGuestCsum) && acked(kNetFeatureGuestTso4)) offload |= TUN_F_TSO4;
  if (acked(kNetFeatureGuestCsum) && acked(kNetFeatureGuestTso6)) offload |= TUN_F_TSO6;
  if (acked(kNetFeatureGuestCsum) && acked(kNetFeatureGuestUfo)) offload |= TUN_F_UFO;
  try {
    tap_.set_offload(offload);
  } catch (const common::Error&) {
    // Kernels without UFO support refuse the flag; the rest still applies.
    tap_.set_offload(offload & ~unsigned(TUN_F_UFO));
  }
  rx_frame_len_ = 0;
  tap_events_ = EPOLLIN;
  watch(tap_.fd(), EPOLLIN, [this](uint32_t) {
    auto guard = lock();
    counters_.rx_tap_event_count.inc();
    if (activated() && !broken()) process_rx();
  });
  watch(rx_limiter_.fd(), EPOLLIN, [this](uint32_t) {
    auto guard = lock();
    counters_.rx_event_rate_limiter_count.inc();
    if (!rx_limiter_.event_handler()) {
      counters_.event_fails.inc();
      return;
    }
    if (activated() && !broken()) process_rx();
  });
  watch(tx_limiter_.fd(), EPOLLIN, [this](uint32_t) {
    auto guard = lock();
    counters_.tx_rate_limiter_event_count.inc();
    if (!tx_limiter_.event_handler()) {
      counters_.event_fails.inc();
      return;
    }
    if (activated() && !broken()) process_tx();
  });
}

void NetDevice::process_queue(uint16_t index) {
  if (!activated() || broken()) {
    counters_.event_fails.inc();
    return;
  }
  if (index == kRxQueue) {
    counters_.rx_queue_event_count.inc();
    process_rx();
  } else if (index == kTxQueue) {
    counters_.tx_queue_event_count.inc();
    process_tx();
  } else {
    counters_.event_fails.inc();
  }
}

void NetDevice::update_tap_interest() {
  uint32_t wanted = (rx_frame_len_ == 0 && !rx_limiter_.is_blocked()) ? uint32_t(EPOLLIN) : 0u;
  if (wanted != tap_events_) {
    loop().modify(tap_.fd(), wanted);
    tap_events_ = wanted;
  }
}

void NetDevice::process_tx() {
  Queue& q = queue(kTxQueue);
  bool any = false;
  try {
    for (;;) {
      q.disable_notifications();
      while (q.pop(chain_)) {
        any = true;
        uint32_t len = chain_.readable_len();
        if (len < kVnetHeaderSize || len > kNetMaxFrame) {
          counters_.tx_malformed_frames.inc();
          report_invalid("TX frame of " + std::to_string(len) + " bytes (header included)");
          q.add_used(chain_.head(), 0);
          continue;
        }
        if (tx_limiter_.enabled()) {
          if (!tx_limiter_.consume(1, RateLimiter::TokenType::kOps)) {
            q.undo_pop();
            counters_.tx_rate_limiter_throttled.inc();
            counters_.tx_remaining_reqs_count.inc(q.pending());
            signal_used(kTxQueue);
            return;
          }
          if (!tx_limiter_.consume(len, RateLimiter::TokenType::kBytes)) {
            tx_limiter_.manual_replenish(1, RateLimiter::TokenType::kOps);
            q.undo_pop();
            counters_.tx_rate_limiter_throttled.inc();
            counters_.tx_remaining_reqs_count.inc(q.pending());
            signal_used(kTxQueue);
            return;
          }
        }
        if (mac_ && len >= kVnetHeaderSize + 12) {
          // Firecracker counts (and still sends) frames whose source MAC is
          // not the configured one.
          std::array<uint8_t, 6> src{};
          ChainCursor c(memory(), chain_.readable());
          c.skip(kVnetHeaderSize + 6);
          c.read(src);
          if (src != *mac_) counters_.tx_spoofed_mac_count.inc();
        }
        iovecs_.clear();
        ChainCursor(memory(), chain_.readable()).iovecs(len, iovecs_);
        uint64_t start = now_us();
        ssize_t n;
        do {
          n = ::writev(tap_.fd(), iovecs_.data(),
                       static_cast<int>(std::min<size_t>(iovecs_.size(), IOV_MAX)));
        } while (n < 0 && errno == EINTR);
        counters_.tap_write_agg.record(now_us() - start);
        if (n < 0) {
          counters_.tap_write_fails.inc();
          counters_.tx_fails.inc();
        } else {
          counters_.tx_bytes_count.inc(len - kVnetHeaderSize);
          counters_.tx_packets_count.inc();
          counters_.tx_count.inc();
        }
        q.add_used(chain_.head(), 0);
      }
      if (q.broken() || !q.enable_notifications()) break;
    }
  } catch (const GuestMemoryError& e) {
    mark_broken(std::string("guest memory access failed: ") + e.what());
  }
  if (!any) counters_.no_tx_avail_buffer.inc();
  signal_used(kTxQueue);
}

bool NetDevice::deliver_frame() {
  Queue& q = queue(kRxQueue);
  uint32_t len = rx_frame_len_;
  if (rx_limiter_.enabled()) {
    if (!rx_limiter_.consume(1, RateLimiter::TokenType::kOps)) {
      counters_.rx_rate_limiter_throttled.inc();
      return false;
    }
    if (!rx_limiter_.consume(len, RateLimiter::TokenType::kBytes)) {
      rx_limiter_.manual_replenish(1, RateLimiter::TokenType::kOps);
      counters_.rx_rate_limiter_throttled.inc();
      return false;
    }
  }
  auto refund = [&] {
    if (!rx_limiter_.enabled()) return;
    rx_limiter_.manual_replenish(1, RateLimiter::TokenType::kOps);
    rx_limiter_.manual_replenish(len, RateLimiter::TokenType::kBytes);
  };
  bool mergeable = acked(kNetFeatureMrgRxbuf);
  // virtio_net_hdr_v1.num_buffers (§5.1.6): 1 without mergeable buffers; the
  // tap leaves those two bytes alone.
  uint16_t one = 1;
  std::memcpy(rx_frame_.data() + 10, &one, 2);
  rx_used_.clear();
  uint64_t skipped_before = q.skipped_chains();
  uint32_t written = 0;
  while (written < len) {
    if (!q.pop(chain_)) {
      // Not enough buffers for the whole frame: give back what we took and
      // wait for the driver to post more (§5.1.6.3).
      if (q.skipped_chains() != skipped_before) {
        mark_broken("malformed RX buffer in the middle of a frame");
      } else {
        q.undo_pops(static_cast<uint16_t>(rx_used_.size()));
      }
      counters_.no_rx_avail_buffer.inc();
      refund();
      return false;
    }
    uint32_t room = chain_.writable_len();
    if (!mergeable && room < len) {
      // Without mergeable buffers a frame needs one chain big enough: drop it.
      q.undo_pop();
      counters_.rx_fails.inc();
      report_invalid("RX buffer of " + std::to_string(room) + " bytes for a " +
                     std::to_string(len) + "-byte frame");
      return true;
    }
    if (rx_used_.empty() && room < kVnetHeaderSize) {
      // The header must sit in the first buffer of a frame.
      q.add_used(chain_.head(), 0);
      counters_.rx_fails.inc();
      skipped_before = q.skipped_chains();
      continue;
    }
    uint32_t n = std::min(room, len - written);
    ChainCursor(memory(), chain_.writable())
        .write(std::span<const uint8_t>(rx_frame_.data() + written, n));
    if (rx_used_.empty()) first_buffers_.assign(chain_.writable().begin(), chain_.writable().end());
    rx_used_.emplace_back(chain_.head(), n);
    written += n;
  }
  if (rx_used_.size() > 1) {
    uint16_t buffers = static_cast<uint16_t>(rx_used_.size());
    ChainCursor header(memory(), first_buffers_);
    header.skip(10);
    header.write(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&buffers), 2));
  }
  for (auto& [head, n] : rx_used_) q.add_used(head, n);
  counters_.rx_bytes_count.inc(len - kVnetHeaderSize);
  counters_.rx_packets_count.inc();
  counters_.rx_count.inc();
  return true;
}

void NetDevice::process_rx() {
  Queue& q = queue(kRxQueue);
  try {
    for (int frames = 0; frames < kMaxFramesPerEvent; ++frames) {
      if (rx_frame_len_ == 0) {
        if (rx_limiter_.is_blocked()) break;
        ssize_t n;
        do {
          n = ::read(tap_.fd(), rx_frame_.data(), rx_frame_.size());
        } while (n < 0 && errno == EINTR);
        if (n < 0) {
          if (errno != EAGAIN && errno != EWOULDBLOCK) {
            counters_.tap_read_fails.inc();
            LOG_WARN(logger(), name() + ": reading tap failed: " + common::errno_text(errno));
          }
          break;
        }
        if (n < kVnetHeaderSize) continue;
        rx_frame_len_ = static_cast<uint32_t>(n);
      }
      if (deliver_frame()) {
        rx_frame_len_ = 0;
        continue;
      }
      if (broken() || rx_limiter_.is_blocked()) break;
      // Out of buffers: re-arm the driver's kick; retry if some arrived.
      if (!q.enable_notifications()) break;
    }
  } catch (const GuestMemoryError& e) {
    mark_broken(std::string("guest memory access failed: ") + e.what());
  }
  if (!broken()) update_tap_interest();
  signal_used(kRxQueue);
}

void NetDevice::update(const NetworkInterfaceUpdate& update) {
  if (update.rx_rate_limiter) rx_limiter_.update(*update.rx_rate_limiter);
  if (update.tx_rate_limiter) tx_limiter_.update(*update.tx_rate_limiter);
  LOG_INFO(logger(), name() + ": rate limiters updated");
}

}  // namespace ember::vmm::virtio
