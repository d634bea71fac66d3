// virtio-rng (virtio 1.2 §5.4), Firecracker's /entropy device: fills each
// device-writable buffer with bytes from the host's getrandom(2), behind an
// optional token-bucket rate limiter (1 op + the bytes per request).
#pragma once

#include "vmm/devices/virtio/device_base.h"
#include "vmm/rate_limiter/rate_limiter.h"
#include "vmm/vmm_config/vmm_config.h"

namespace ember::vmm::virtio {

// Bytes served per request at most (§5.4.6.1 lets the device write fewer
// than asked); keeps one request from stalling the device thread.
inline constexpr uint32_t kEntropyMaxRequest = 64 * 1024;

class EntropyDevice : public DeviceBase {
 public:
  EntropyDevice(const EntropyConfig& config, Logger& logger, Metrics& metrics);
  ~EntropyDevice() override;

  DeviceType device_type() const override { return DeviceType::kRng; }
  uint64_t available_features() const override;
  std::vector<uint16_t> queue_max_sizes() const override { return {256}; }
  // No config space (§5.4.4).
  void read_config(uint64_t offset, std::span<uint8_t> data) const override;
  void write_config(uint64_t offset, std::span<const uint8_t> data) override;
  void process_queue(uint16_t index) override;

 private:
  struct Counters {
    explicit Counters(Metrics& m);
    Counter &activate_fails, &entropy_event_fails, &entropy_event_count, &entropy_bytes,
        &host_rng_fails, &entropy_rate_limiter_throttled, &rate_limiter_event_count;
  };

  void on_activate() override;
  void count_activate_fail() override { counters_.activate_fails.inc(); }
  void process_requests();
  // Fills the chain's writable part (at most kEntropyMaxRequest bytes);
  // returns the bytes written, or -1 if getrandom failed.
  int64_t fill(const DescriptorChain& chain, uint32_t len);

  RateLimiter rate_limiter_;
  Counters counters_;
  DescriptorChain chain_;
  std::vector<iovec> iovecs_;
};

}  // namespace ember::vmm::virtio
