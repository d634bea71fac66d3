// virtio-mmio transport, version 2 ("modern") only (virtio 1.2 §4.2): serves
// any VirtioDevice at one 4 KiB MMIO window.
//
// Threads: register accesses arrive on vCPU threads and run under
// device.lock(). Queue notifications arrive as ioeventfds (one per queue,
// datamatch = queue index) on the device thread's EventLoop, which calls
// process_queue() under device.lock(). Activation (DRIVER_OK) and reset
// (status 0) are handed to the device thread too, because devices register
// their own fds with the loop then, and the loop is single-threaded.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "vmm/common/event_fd.h"
#include "vmm/common/event_loop.h"
#include "vmm/devices/bus.h"
#include "vmm/devices/virtio/virtio_device.h"
#include "vmm/logger/logger.h"
#include "vmm/vstate/guest_memory.h"

namespace ember::vmm::virtio {

// Register offsets (virtio 1.2 §4.2.2, table "MMIO Device Register Layout").
inline constexpr uint64_t kMmioMagicValue = 0x000;
inline constexpr uint64_t kMmioVersion = 0x004;
inline constexpr uint64_t kMmioDeviceId = 0x008;
inline constexpr uint64_t kMmioVendorId = 0x00c;
inline constexpr uint64_t kMmioDeviceFeatures = 0x010;
inline constexpr uint64_t kMmioDeviceFeaturesSel = 0x014;
inline constexpr uint64_t kMmioDriverFeatures = 0x020;
inline constexpr uint64_t kMmioDriverFeaturesSel = 0x024;
inline constexpr uint64_t kMmioQueueSel = 0x030;
inline constexpr uint64_t kMmioQueueNumMax = 0x034;
inline constexpr uint64_t kMmioQueueNum = 0x038;
inline constexpr uint64_t kMmioQueueReady = 0x044;
inline constexpr uint64_t kMmioQueueNotify = 0x050;
inline constexpr uint64_t kMmioInterruptStatus = 0x060;
inline constexpr uint64_t kMmioInterruptAck = 0x064;
inline constexpr uint64_t kMmioStatus = 0x070;
inline constexpr uint64_t kMmioQueueDescLow = 0x080;
inline constexpr uint64_t kMmioQueueDescHigh = 0x084;
inline constexpr uint64_t kMmioQueueDriverLow = 0x090;
inline constexpr uint64_t kMmioQueueDriverHigh = 0x094;
inline constexpr uint64_t kMmioQueueDeviceLow = 0x0a0;
inline constexpr uint64_t kMmioQueueDeviceHigh = 0x0a4;
inline constexpr uint64_t kMmioShmSel = 0x0ac;
inline constexpr uint64_t kMmioShmLenLow = 0x0b0;
inline constexpr uint64_t kMmioShmLenHigh = 0x0b4;
inline constexpr uint64_t kMmioShmBaseLow = 0x0b8;
inline constexpr uint64_t kMmioShmBaseHigh = 0x0bc;
inline constexpr uint64_t kMmioQueueReset = 0x0c0;
inline constexpr uint64_t kMmioConfigGeneration = 0x0fc;
inline constexpr uint64_t kMmioConfig = 0x100;

inline constexpr uint32_t kMmioMagic = 0x74726976;  // "virt"
inline constexpr uint32_t kMmioVersion2 = 2;

// Device status bits (virtio 1.2 §2.1).
inline constexpr uint32_t kStatusAcknowledge = 1;
inline constexpr uint32_t kStatusDriver = 2;
inline constexpr uint32_t kStatusDriverOk = 4;
inline constexpr uint32_t kStatusFeaturesOk = 8;
inline constexpr uint32_t kStatusNeedsReset = 64;
inline constexpr uint32_t kStatusFailed = 128;

// Interrupt status bits (virtio 1.2 §4.2.2).
inline constexpr uint32_t kInterruptUsedRing = 1;
inline constexpr uint32_t kInterruptConfigChange = 2;

class MmioTransport : public BusDevice, public Interrupt {
 public:
  // Registers the queue notification eventfds with `loop`; must be called
  // before the loop's thread runs (or on it). The caller binds
  // interrupt_event() to the device's GSI (KVM_IRQFD) and queue_events()[i]
  // to base + kMmioQueueNotify with datamatch i (KVM_IOEVENTFD).
  MmioTransport(std::unique_ptr<VirtioDevice> device, const GuestMemory& memory, common::EventLoop& loop,
                Logger& logger);
  ~MmioTransport() override;

  VirtioDevice& device() { return *device_; }
  const common::EventFd& interrupt_event() const { return interrupt_evt_; }
  const std::vector<std::unique_ptr<common::EventFd>>& queue_events() const { return queue_evts_; }

  // BusDevice (vCPU threads).
  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

  // Interrupt (device thread, under device.lock()).
  void signal_used_queue(uint16_t queue_index) override;
  void signal_config_change() override;

  uint32_t status() const;
  uint32_t interrupt_status() const { return interrupt_status_.load(); }

 private:
  uint32_t read_register(uint64_t offset);
  void write_register(uint64_t offset, uint32_t value);
  void set_status(uint32_t value);
  void reset_transport();
  QueueState* selected_queue();
  bool queues_configurable() const;
  // Device-thread halves of DRIVER_OK and reset.
  void activate_on_loop();
  void reset_on_loop();
  void on_queue_event(uint16_t index);

  std::unique_ptr<VirtioDevice> device_;
  const GuestMemory& memory_;
  common::EventLoop& loop_;
  Logger& logger_;
  common::EventFd interrupt_evt_;
  std::vector<std::unique_ptr<common::EventFd>> queue_evts_;

  // Guarded by device_->lock().
  uint32_t status_ = 0;
  uint32_t device_features_sel_ = 0;
  uint32_t driver_features_sel_ = 0;
  uint64_t driver_features_ = 0;
  uint32_t queue_sel_ = 0;
  std::vector<QueueState> queues_;
  bool activation_pending_ = false;
  uint64_t pending_kicks_ = 0;  // notifications that arrived before activation

  std::atomic<uint32_t> interrupt_status_{0};
  std::atomic<uint32_t> config_generation_{0};
};

}  // namespace ember::vmm::virtio
