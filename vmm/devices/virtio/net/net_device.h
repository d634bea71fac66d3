// virtio-net (virtio 1.2 §5.1) on a host tap (reference/firecracker-compat.md
// §5, without MMDS): queues rx (0) and tx (1), checksum/TSO/UFO offloads in
// both directions, mergeable RX buffers, optional MAC and MTU, and separate
// token-bucket rate limiters for RX and TX (1 op + the frame's bytes each).
#pragma once

#include <array>
#include <optional>
#include <vector>

#include "vmm/devices/virtio/device_base.h"
#include "vmm/devices/virtio/net/tap.h"
#include "vmm/rate_limiter/rate_limiter.h"
#include "vmm/vmm_config/vmm_config.h"

namespace ember::vmm::virtio {

// virtio 1.2 §5.1.3 feature bits.
inline constexpr unsigned kNetFeatureCsum = 0;
inline constexpr unsigned kNetFeatureGuestCsum = 1;
inline constexpr unsigned kNetFeatureMtu = 3;
inline constexpr unsigned kNetFeatureMac = 5;
inline constexpr unsigned kNetFeatureGuestTso4 = 7;
inline constexpr unsigned kNetFeatureGuestTso6 = 8;
inline constexpr unsigned kNetFeatureGuestUfo = 10;
inline constexpr unsigned kNetFeatureHostTso4 = 11;
inline constexpr unsigned kNetFeatureHostTso6 = 12;
inline constexpr unsigned kNetFeatureHostUfo = 14;
inline constexpr unsigned kNetFeatureMrgRxbuf = 15;

// Largest frame, virtio-net header included (Firecracker's MAX_BUFFER_SIZE:
// 64 KiB of GSO payload plus Ethernet, VLAN and the 12-byte header).
inline constexpr uint32_t kNetMaxFrame = 65562;

// "aa:bb:cc:dd:ee:ff" -> bytes; std::nullopt if malformed.
std::optional<std::array<uint8_t, 6>> parse_mac(const std::string& text);

class NetDevice : public DeviceBase {
 public:
  static constexpr uint16_t kRxQueue = 0;
  static constexpr uint16_t kTxQueue = 1;

  // Opens the (existing) tap config.host_dev_name; throws common::Error
  // naming the interface.
  NetDevice(const NetworkInterfaceConfig& config, Logger& logger, Metrics& metrics);
  ~NetDevice() override;

  DeviceType device_type() const override { return DeviceType::kNet; }
  uint64_t available_features() const override;
  std::vector<uint16_t> queue_max_sizes() const override { return {256, 256}; }
  void read_config(uint64_t offset, std::span<uint8_t> data) const override;
  void write_config(uint64_t offset, std::span<const uint8_t> data) override;
  void process_queue(uint16_t index) override;

  // PATCH /network-interfaces/{id}; the caller holds lock().
  void update(const NetworkInterfaceUpdate& update);

  const NetworkInterfaceConfig& config() const { return config_; }
  int tap_fd() const { return tap_.fd(); }

 private:
  struct Counters {
    Counters(Metrics& m, const std::string& iface);
    DeviceCounter activate_fails, cfg_fails, no_rx_avail_buffer, no_tx_avail_buffer, event_fails,
        rx_queue_event_count, rx_event_rate_limiter_count, rx_rate_limiter_throttled,
        rx_tap_event_count, rx_bytes_count, rx_packets_count, rx_fails, rx_count, tap_read_fails,
        tap_write_fails, tx_bytes_count, tx_malformed_frames, tx_fails, tx_count, tx_packets_count,
        tx_queue_event_count, tx_rate_limiter_event_count, tx_rate_limiter_throttled,
        tx_spoofed_mac_count, tx_remaining_reqs_count;
    DeviceLatency tap_write_agg;
  };

  void on_activate() override;
  void count_activate_fail() override { counters_.activate_fails.inc(); }
  void process_tx();
  void process_rx();
  // Writes rx_frame_ into the RX queue. False when it has to wait (no
  // buffers, or the RX rate limiter).
  bool deliver_frame();
  void update_tap_interest();

  NetworkInterfaceConfig config_;
  std::optional<std::array<uint8_t, 6>> mac_;
  Tap tap_;
  RateLimiter rx_limiter_;
  RateLimiter tx_limiter_;
  Counters counters_;
  DescriptorChain chain_;
  std::vector<iovec> iovecs_;
  std::vector<uint8_t> rx_frame_;
  uint32_t rx_frame_len_ = 0;  // a frame read from the tap waiting for the guest
  uint32_t tap_events_ = 0;
  std::vector<std::pair<uint16_t, uint32_t>> rx_used_;  // scratch: (head, len) of one frame
  std::vector<Descriptor> first_buffers_;               // scratch: the frame's first chain
};

}  // namespace ember::vmm::virtio
