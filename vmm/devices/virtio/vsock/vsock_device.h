// virtio-vsock (virtio 1.2 §5.10) with Firecracker's hybrid unix-socket host
// side (reference/firecracker-compat.md §3): queues rx (0), tx (1) and event
// (2), config space = guest_cid (le64). The carrier of the guest agent
// channel and container stdio.
#pragma once

#include <memory>

#include "vmm/devices/virtio/device_base.h"
#include "vmm/devices/virtio/vsock/muxer.h"
#include "vmm/devices/virtio/vsock/vsock_counters.h"
#include "vmm/vmm_config/vmm_config.h"

namespace ember::vmm::virtio {

class VsockDevice : public DeviceBase {
 public:
  static constexpr uint16_t kRxQueue = 0;
  static constexpr uint16_t kTxQueue = 1;
  static constexpr uint16_t kEventQueue = 2;

  // Binds config.uds_path (must not exist); throws common::Error naming it.
  VsockDevice(const VsockConfig& config, Logger& logger, Metrics& metrics);
  ~VsockDevice() override;

  DeviceType device_type() const override { return DeviceType::kVsock; }
  uint64_t available_features() const override;
  std::vector<uint16_t> queue_max_sizes() const override {
    return event_queue_in_frontend_ ? std::vector<uint16_t>{256, 256}
                                    : std::vector<uint16_t>{256, 256, 256};
  }
  void read_config(uint64_t offset, std::span<uint8_t> data) const override;
  void write_config(uint64_t offset, std::span<const uint8_t> data) override;
  void process_queue(uint16_t index) override;

  // QEMU's vhost-user-vsock-device keeps the event queue (it only carries
  // TRANSPORT_RESET, which the frontend sends itself) and hands the backend
  // rx and tx only: served that way the device has two queues. Call before
  // the device is activated.
  void set_event_queue_in_frontend(bool in_frontend) { event_queue_in_frontend_ = in_frontend; }

  const VsockConfig& config() const { return config_; }
  size_t connection_count() const { return muxer_.connection_count(); }

 private:
  void on_activate() override;
  void on_reset() override;
  // A ring stop keeps every connection (the container's stdio streams
  // survive a VM pause under QEMU); see VsockMuxer::pause().
  void on_stop_queues() override;
  void on_restart_queues() override;
  void count_activate_fail() override { counters_.activate_fails.inc(); }
  void process_tx();
  void process_rx();

  VsockConfig config_;
  VsockCounters counters_;
  VsockMuxer muxer_;
  DescriptorChain chain_;
  bool event_queue_in_frontend_ = false;
};

}  // namespace ember::vmm::virtio
