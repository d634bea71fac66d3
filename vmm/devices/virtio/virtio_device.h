// The contract between a virtio device model and the transport serving it.
//
// A device knows its feature bits, its config space and how to process its
// queues; the transport (virtio-mmio inside ember-vmm, vhost-user for QEMU)
// knows registers, notifications and interrupts. Neither knows the other's
// business (STYLE.md, "kvmtool fits a device in one short file").
#pragma once

#include <cstdint>
#include <mutex>
#include <span>
#include <vector>

#include "vmm/common/event_loop.h"
#include "vmm/vstate/guest_memory.h"

namespace ember::vmm::virtio {

// virtio 1.2 §5: device IDs used by ember.
enum class DeviceType : uint32_t { kNet = 1, kBlock = 2, kRng = 4, kBalloon = 5, kVsock = 19 };

// virtio 1.2 §6: reserved feature bits shared by all devices.
inline constexpr unsigned kFeatureIndirectDesc = 28;
inline constexpr unsigned kFeatureEventIdx = 29;
inline constexpr unsigned kFeatureVersion1 = 32;
inline constexpr unsigned kFeatureAccessPlatform = 33;
inline constexpr unsigned kFeatureInOrder = 35;

// What the driver programmed for one virtqueue through the transport, plus the
// ring positions (vhost-user SET/GET_VRING_BASE move these across).
struct QueueState {
  uint16_t max_size = 256;
  uint16_t size = 0;  // chosen by the driver; a power of two <= max_size
  bool ready = false;
  GuestAddress desc_table;
  GuestAddress avail_ring;
  GuestAddress used_ring;
  uint16_t next_avail = 0;
  uint16_t next_used = 0;
};

// How a device tells the driver something happened; implemented by the
// transport (irqfd + interrupt status for virtio-mmio, call eventfd for vhost-user).
class Interrupt {
 public:
  virtual ~Interrupt() = default;
  virtual void signal_used_queue(uint16_t queue_index) = 0;
  virtual void signal_config_change() = 0;
};

// Everything a device gets when the driver sets DRIVER_OK.
struct ActivationContext {
  const GuestMemory& memory;
  std::vector<QueueState> queues;  // one per queue_max_sizes() entry
  uint64_t acked_features;
  Interrupt& interrupt;
  // The loop the transport runs the device on: the device registers its own
  // fds here (sockets, taps, rate-limiter timerfds). Handlers it registers
  // must take lock() before touching device state.
  common::EventLoop& loop;
};

class VirtioDevice {
 public:
  virtual ~VirtioDevice() = default;

  virtual DeviceType device_type() const = 0;
  virtual uint64_t available_features() const = 0;
  // One entry per virtqueue: its maximum size.
  virtual std::vector<uint16_t> queue_max_sizes() const = 0;

  // Device-specific config space (virtio 1.2 §4.2.2: at 0x100 on virtio-mmio).
  // Reads past the end return zeros; writes to read-only fields are ignored.
  virtual void read_config(uint64_t offset, std::span<uint8_t> data) const = 0;
  virtual void write_config(uint64_t offset, std::span<const uint8_t> data) = 0;

  // Called once the driver has set DRIVER_OK; throws common::Error when the
  // configuration cannot be served (the transport then sets DEVICE_NEEDS_RESET).
  virtual void activate(ActivationContext context) = 0;
  // True while the device serves its queues: false before activation, after
  // reset() and while its queues are stopped (stop_queues() below).
  virtual bool activated() const = 0;
  // The driver notified queue `index` (a kick). Never blocks, never throws on
  // guest input: a bad request is failed or the device marks itself broken.
  virtual void process_queue(uint16_t index) = 0;
  // Current ring positions, for vhost-user GET_VRING_BASE and for snapshots.
  virtual QueueState queue_state(uint16_t index) const = 0;
  // Driver wrote status 0: drop queues and unregister fds from the loop.
  virtual void reset() = 0;

  // Stopping the rings is not a reset. A vhost-user frontend stops them
  // (GET_VRING_BASE, vhost-user.rst "Ring states") when the VM is paused or
  // its memory map changes, and starts them again from the positions it got
  // back; the driver saw nothing and still owns its connections, requests
  // and config. Only a reset (status 0, RESET_OWNER/RESET_DEVICE, the
  // frontend going away) ends device state. virtio-mmio never stops rings:
  // its VM pause freezes the device thread instead.
  //
  // stop_queues() (on an activated device): from its return until
  // restart_queues() or reset() the device does not touch guest memory or
  // the rings, raises no interrupt and ignores process_queue(); it has
  // finished every chain it popped (ember's devices complete or put back a
  // chain before they return), so the returned positions (one per queue;
  // next_avail is what GET_VRING_BASE reports) are where the rings resume.
  // Host-side state stays: a vsock device keeps its connections and leaves
  // host bytes in the host sockets until the RX ring runs again.
  //
  // restart_queues(): the transport programmed the rings again, possibly
  // over a new mapping of the same guest memory (`context.memory`; the old
  // one may be gone). When every queue continues where it stopped (same
  // size and addresses, next_avail as returned, used idx in guest memory as
  // left), the device carries on with its state; otherwise the driver reset
  // the device in between (QEMU restarts a reset virtqueue at index 0) and
  // the device is reset and activated afresh. Throws like activate(), after
  // resetting the device. As after activate(), the transport then calls
  // process_queue() once per queue: kicks sent while stopped went nowhere.
  //
  // The defaults suit devices without long-lived state: stop is a reset
  // (after reading the positions), restart an activation.
  virtual std::vector<QueueState> stop_queues() {
    std::vector<QueueState> positions;
    for (size_t i = 0; i < queue_max_sizes().size(); ++i)
      positions.push_back(queue_state(static_cast<uint16_t>(i)));
    reset();
    return positions;
  }
  virtual void restart_queues(ActivationContext context) { activate(std::move(context)); }
  // True once the device hit an unrecoverable driver error (a ring it cannot
  // trust): the transport reports DEVICE_NEEDS_RESET (0x40) in the status
  // register (virtio 1.2 §2.1.2). The device has already raised a
  // config-change interrupt.
  virtual bool needs_reset() const { return false; }

  // Every entry into a device holds this lock: transports take it around the
  // calls above, devices take it in their own loop handlers.
  std::unique_lock<std::mutex> lock() const { return std::unique_lock<std::mutex>(mutex_); }

 private:
  mutable std::mutex mutex_;
};

}  // namespace ember::vmm::virtio
