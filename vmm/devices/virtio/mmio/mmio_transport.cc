#include "vmm/devices/virtio/mmio/mmio_transport.h"

#include <cstring>

#include "vmm/common/error.h"

namespace ember::vmm::virtio {
namespace {

constexpr uint64_t kVersion1Bit = 1ULL << kFeatureVersion1;

bool is_power_of_two(uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

void set_low(uint64_t& reg, uint32_t v) { reg = (reg & 0xffffffff00000000ULL) | v; }
void set_high(uint64_t& reg, uint32_t v) { reg = (reg & 0xffffffffULL) | (static_cast<uint64_t>(v) << 32); }
void set_low(GuestAddress& a, uint32_t v) {
  uint64_t raw = a.raw();
  set_low(raw, v);
  a = GuestAddress(raw);
}
void set_high(GuestAddress& a, uint32_t v) {
  uint64_t raw = a.raw();
  set_high(raw, v);
  a = GuestAddress(raw);
}

}  // namespace

MmioTransport::MmioTransport(std::unique_ptr<VirtioDevice> device, const GuestMemory& memory,
                             common::EventLoop& loop, Logger& logger)
    : device_(std::move(device)), memory_(memory), loop_(loop), logger_(logger) {
  auto max_sizes = device_->queue_max_sizes();
  if (max_sizes.size() > 64) throw common::Error("virtio-mmio: a device may have at most 64 queues");
  for (uint16_t max : max_sizes) {
    QueueState q;
    q.max_size = max;
    queues_.push_back(q);
    queue_evts_.push_back(std::make_unique<common::EventFd>());
  }
  for (size_t i = 0; i < queue_evts_.size(); ++i) {
    loop_.add(queue_evts_[i]->fd(), EPOLLIN, [this, i](uint32_t) { on_queue_event(static_cast<uint16_t>(i)); });
  }
}

MmioTransport::~MmioTransport() {
  for (auto& evt : queue_evts_) loop_.remove(evt->fd());
}

uint32_t MmioTransport::status() const {
  auto lock = device_->lock();
  return status_;
}

void MmioTransport::read(uint64_t offset, std::span<uint8_t> data) {
  if (offset >= kMmioConfig) {
    auto lock = device_->lock();
    device_->read_config(offset - kMmioConfig, data);
    return;
  }
  // virtio 1.2 §4.2.2.2: the driver uses only 32-bit aligned accesses for registers.
  if (data.size() != 4 || offset % 4 != 0) {
    std::memset(data.data(), 0, data.size());
    LOG_WARN(logger_, "virtio-mmio: ignoring " + std::to_string(data.size()) + "-byte register read at offset " +
                          std::to_string(offset));
    return;
  }
  uint32_t value;
  {
    auto lock = device_->lock();
    value = read_register(offset);
  }
  std::memcpy(data.data(), &value, 4);
}

void MmioTransport::write(uint64_t offset, std::span<const uint8_t> data) {
  if (offset >= kMmioConfig) {
    auto lock = device_->lock();
    device_->write_config(offset - kMmioConfig, data);
    return;
  }
  if (data.size() != 4 || offset % 4 != 0) {
    LOG_WARN(logger_, "virtio-mmio: ignoring " + std::to_string(data.size()) +
                          "-byte register write at offset " + std::to_string(offset));
    return;
  }
  uint32_t value;
  std::memcpy(&value, data.data(), 4);
  auto lock = device_->lock();
  write_register(offset, value);
}

QueueState* MmioTransport::selected_queue() {
  return queue_sel_ < queues_.size() ? &queues_[queue_sel_] : nullptr;
}

uint32_t MmioTransport::read_register(uint64_t offset) {
  const QueueState* q = selected_queue();
  switch (offset) {
    case kMmioMagicValue:
      return kMmioMagic;
    case kMmioVersion:
      return kMmioVersion2;
    case kMmioDeviceId:
      return static_cast<uint32_t>(device_->device_type());
    case kMmioVendorId:
      return 0;
    case kMmioDeviceFeatures: {
      uint64_t features = device_->available_features() | kVersion1Bit;
      if (device_features_sel_ == 0) return static_cast<uint32_t>(features);
      if (device_features_sel_ == 1) return static_cast<uint32_t>(features >> 32);
      return 0;
    }
    case kMmioQueueNumMax:
      return q ? q->max_size : 0;
    case kMmioQueueNum:
      return q ? q->size : 0;
    case kMmioQueueReady:
      return q && q->ready ? 1 : 0;
    case kMmioInterruptStatus:
      return interrupt_status_.load();
    case kMmioStatus:
      return status_ | (device_->needs_reset() ? kStatusNeedsReset : 0);
    case kMmioQueueDescLow:
      return q ? static_cast<uint32_t>(q->desc_table.raw()) : 0;
    case kMmioQueueDescHigh:
      return q ? static_cast<uint32_t>(q->desc_table.raw() >> 32) : 0;
    case kMmioQueueDriverLow:
      return q ? static_cast<uint32_t>(q->avail_ring.raw()) : 0;
    case kMmioQueueDriverHigh:
      return q ? static_cast<uint32_t>(q->avail_ring.raw() >> 32) : 0;
    case kMmioQueueDeviceLow:
      return q ? static_cast<uint32_t>(q->used_ring.raw()) : 0;
    case kMmioQueueDeviceHigh:
      return q ? static_cast<uint32_t>(q->used_ring.raw() >> 32) : 0;
    // No shared memory regions: "a length of -1" (virtio 1.2 §4.2.2).
    case kMmioShmLenLow:
    case kMmioShmLenHigh:
    case kMmioShmBaseLow:
    case kMmioShmBaseHigh:
      return 0xffffffff;
    case kMmioConfigGeneration:
      return config_generation_.load();
    default:
      return 0;
  }
}

bool MmioTransport::queues_configurable() const {
  // virtio 1.2 §3.1.1: queues are set up after FEATURES_OK and before DRIVER_OK.
  return (status_ & kStatusFeaturesOk) && !(status_ & (kStatusDriverOk | kStatusFailed));
}

void MmioTransport::write_register(uint64_t offset, uint32_t value) {
  switch (offset) {
    case kMmioDeviceFeaturesSel:
      device_features_sel_ = value;
      return;
    case kMmioDriverFeaturesSel:
      driver_features_sel_ = value;
      return;
    case kMmioDriverFeatures:
      if (!(status_ & kStatusDriver) || (status_ & kStatusFeaturesOk)) {
        LOG_WARN(logger_, "virtio-mmio: driver features written outside feature negotiation; ignored");
        return;
      }
      if (driver_features_sel_ == 0) set_low(driver_features_, value);
      if (driver_features_sel_ == 1) set_high(driver_features_, value);
      return;
    case kMmioQueueSel:
      queue_sel_ = value;
      return;
    case kMmioQueueNotify:
      // Normally KVM turns this write into an ioeventfd signal; without one it lands here.
      if (value < queue_evts_.size()) queue_evts_[value]->signal();
      return;
    case kMmioInterruptAck:
      interrupt_status_.fetch_and(~value);
      return;
    case kMmioStatus:
      set_status(value);
      return;
    case kMmioQueueNum:
    case kMmioQueueReady:
    case kMmioQueueDescLow:
    case kMmioQueueDescHigh:
    case kMmioQueueDriverLow:
    case kMmioQueueDriverHigh:
    case kMmioQueueDeviceLow:
    case kMmioQueueDeviceHigh:
      break;
    default:
      return;  // read-only or unknown registers: ignored
  }
  QueueState* q = selected_queue();
  if (!q || !queues_configurable()) {
    LOG_WARN(logger_, "virtio-mmio: queue register write outside queue set-up (status " +
                          std::to_string(status_) + ", queue " + std::to_string(queue_sel_) + "); ignored");
    return;
  }
  switch (offset) {
    case kMmioQueueNum:
      q->size = static_cast<uint16_t>(value);
      return;
    case kMmioQueueReady:
      q->ready = value == 1;
      return;
    case kMmioQueueDescLow:
      return set_low(q->desc_table, value);
    case kMmioQueueDescHigh:
      return set_high(q->desc_table, value);
    case kMmioQueueDriverLow:
      return set_low(q->avail_ring, value);
    case kMmioQueueDriverHigh:
      return set_high(q->avail_ring, value);
    case kMmioQueueDeviceLow:
      return set_low(q->used_ring, value);
    case kMmioQueueDeviceHigh:
      return set_high(q->used_ring, value);
  }
}

void MmioTransport::set_status(uint32_t value) {
  if (value == 0) {
    bool was_live = device_->activated() || activation_pending_;
    reset_transport();
    if (was_live) loop_.post([this] { reset_on_loop(); });
    return;
  }
  if ((value & status_) != status_) {
    LOG_WARN(logger_, "virtio-mmio: driver cleared status bits without a reset; ignored");
    return;
  }
  uint32_t added = value & ~status_;
  if (added & kStatusFailed) {
    status_ |= kStatusFailed;
    added &= ~kStatusFailed;
  }
  if (added == 0) return;
  // virtio 1.2 §3.1.1: ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK, one at a
  // time and in that order.
  uint32_t required = 0;
  switch (added) {
    case kStatusAcknowledge:
      required = 0;
      break;
    case kStatusDriver:
      required = kStatusAcknowledge;
      break;
    case kStatusFeaturesOk:
      required = kStatusAcknowledge | kStatusDriver;
      break;
    case kStatusDriverOk:
      required = kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk;
      break;
    default:
      required = ~0u;
      break;
  }
  if ((status_ & ~kStatusFailed) != required) {
    LOG_WARN(logger_, "virtio-mmio: invalid device status transition " + std::to_string(status_) + " -> " +
                          std::to_string(value) + "; ignored");
    return;
  }
  if ((added & kStatusFeaturesOk) && !(driver_features_ & kVersion1Bit)) {
    // A version 2 transport serves modern drivers only: refuse FEATURES_OK
    // so the driver sees the negotiation failed (virtio 1.2 §3.1.1 step 6).
    LOG_WARN(logger_, "virtio-mmio: driver did not accept VIRTIO_F_VERSION_1; refusing FEATURES_OK");
    value &= ~kStatusFeaturesOk;
    added &= ~kStatusFeaturesOk;
  }
  status_ = value;
  if (added & kStatusDriverOk) {
    activation_pending_ = true;
    loop_.post([this] { activate_on_loop(); });
  }
}

void MmioTransport::reset_transport() {
  status_ = 0;
  device_features_sel_ = 0;
  driver_features_sel_ = 0;
  driver_features_ = 0;
  queue_sel_ = 0;
  for (auto& q : queues_) {
    uint16_t max = q.max_size;
    q = QueueState{};
    q.max_size = max;
  }
  activation_pending_ = false;
  pending_kicks_ = 0;
  interrupt_status_.store(0);
}

void MmioTransport::activate_on_loop() {
  auto lock = device_->lock();
  if (!activation_pending_) return;  // reset before we got here
  activation_pending_ = false;
  uint64_t kicks = std::exchange(pending_kicks_, 0);
  for (size_t i = 0; i < queues_.size(); ++i) {
    const QueueState& q = queues_[i];
    if (q.ready && (!is_power_of_two(q.size) || q.size > q.max_size)) {
      LOG_ERROR(logger_, "virtio-mmio: queue " + std::to_string(i) + " has invalid size " +
                             std::to_string(q.size) + " (max " + std::to_string(q.max_size) + ")");
      status_ |= kStatusNeedsReset;
      signal_config_change();
      return;
    }
  }
  uint64_t offered = device_->available_features() | kVersion1Bit;
  try {
    device_->activate(ActivationContext{memory_, queues_, driver_features_ & offered, *this, loop_});
  } catch (const std::exception& e) {
    LOG_ERROR(logger_, std::string("virtio-mmio: activating the device failed: ") + e.what());
    status_ |= kStatusNeedsReset;
    signal_config_change();
    return;
  }
  for (size_t i = 0; i < queues_.size(); ++i) {
    if ((kicks >> i) & 1) device_->process_queue(static_cast<uint16_t>(i));
  }
}

void MmioTransport::reset_on_loop() {
  auto lock = device_->lock();
  if (device_->activated()) device_->reset();
}

void MmioTransport::on_queue_event(uint16_t index) {
  queue_evts_[index]->consume();
  auto lock = device_->lock();
  if (device_->activated()) {
    device_->process_queue(index);
  } else if (activation_pending_) {
    pending_kicks_ |= 1ULL << index;
  }
}

void MmioTransport::signal_used_queue(uint16_t) {
  interrupt_status_.fetch_or(kInterruptUsedRing);
  interrupt_evt_.signal();
}

void MmioTransport::signal_config_change() {
  config_generation_.fetch_add(1);
  interrupt_status_.fetch_or(kInterruptConfigChange);
  interrupt_evt_.signal();
}

}  // namespace ember::vmm::virtio
