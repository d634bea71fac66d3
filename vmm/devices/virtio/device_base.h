// What every ember virtio device has in common, so a device file holds only
// its feature bits, its config space and its queue processing (STYLE.md).
//
// DeviceBase owns the activation state: the guest memory, the Queue objects
// built from the transport's QueueState, the Interrupt and the EventLoop. It
// also implements "hostile input is reported once and never crashes": a
// malformed chain is counted and logged the first time; a broken ring marks
// the device as needing a reset (virtio 1.2 §2.1.2) and raises a config
// interrupt so the driver notices.
//
// It also implements the ring stop of virtio_device.h: stop_queues() keeps
// the device's state, drops the Queue objects (and with them every pointer
// into guest memory) and remembers where each ring stopped; restart_queues()
// rebuilds them over the memory the transport passes and carries on, or
// starts afresh when the rings do not continue where they stopped. Devices
// choose what a stop means for them through on_stop_queues() /
// on_restart_queues(); the default is a reset and a new activation.
//
// Threading: activate(), process_queue(), reset(), stop_queues() and
// restart_queues() run on the thread that runs the device's EventLoop (or
// before it runs), with lock() held by the transport. Handlers the device
// registers in the loop take lock() themselves.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "vmm/devices/virtio/queue.h"
#include "vmm/devices/virtio/virtio_device.h"
#include "vmm/logger/logger.h"
#include "vmm/logger/metrics.h"

namespace ember::vmm::virtio {

// A counter reported both in a device's own metrics group (block_rootfs) and
// in the aggregate group of its kind (block), as Firecracker does.
class DeviceCounter {
 public:
  DeviceCounter() = default;
  DeviceCounter(Metrics& metrics, const std::string& group, const std::string& aggregate,
                const std::string& name)
      : own_(&metrics.counter(group, name)),
        all_(aggregate.empty() || aggregate == group ? nullptr
                                                     : &metrics.counter(aggregate, name)) {}
  void inc(uint64_t n = 1) const {
    if (own_) own_->inc(n);
    if (all_) all_->inc(n);
  }
  uint64_t load() const { return own_ ? own_->load() : 0; }

 private:
  Counter* own_ = nullptr;
  Counter* all_ = nullptr;
};

// Firecracker's LatencyAggregateMetrics (`read_agg`: min_us, max_us as
// stores, sum_us as a counter), in the device's group and the aggregate one.
class DeviceLatency {
 public:
  DeviceLatency() = default;
  DeviceLatency(Metrics& metrics, const std::string& group, const std::string& aggregate,
                const std::string& name)
      : min_(metrics, group, aggregate, name + ".min_us", Metrics::Kind::kStore),
        max_(metrics, group, aggregate, name + ".max_us", Metrics::Kind::kStore),
        sum_(metrics, group, aggregate, name + ".sum_us") {}
  void record(uint64_t us) const {
    min_.lower(us);
    max_.raise(us);
    sum_.inc(us);
  }

 private:
  class Store {
   public:
    Store() = default;
    Store(Metrics& m, const std::string& group, const std::string& aggregate,
          const std::string& name, Metrics::Kind kind)
        : own_(&m.counter(group, name, kind)),
          all_(aggregate.empty() || aggregate == group ? nullptr
                                                       : &m.counter(aggregate, name, kind)) {}
    void lower(uint64_t v) const {
      for (Counter* c : {own_, all_}) {
        if (c && (c->load() == 0 || v < c->load())) c->store(v);
      }
    }
    void raise(uint64_t v) const {
      for (Counter* c : {own_, all_}) {
        if (c && v > c->load()) c->store(v);
      }
    }

   private:
    Counter* own_ = nullptr;
    Counter* all_ = nullptr;
  };
  Store min_, max_;
  DeviceCounter sum_;
};

class DeviceBase : public VirtioDevice {
 public:
  bool activated() const override { return activated_ && !stopped_; }
  // On a device whose queues are stopped: a fresh start (reset first).
  void activate(ActivationContext context) override;
  void reset() override;
  std::vector<QueueState> stop_queues() override;
  void restart_queues(ActivationContext context) override;
  // While stopped: the positions stop_queues() returned.
  QueueState queue_state(uint16_t index) const override;
  bool needs_reset() const override { return broken_; }

  // "block rootfs", "vsock", ...: used in log lines.
  const std::string& name() const { return name_; }

 protected:
  DeviceBase(Logger& logger, std::string name);

  // After the queues are built. May throw common::Error to refuse activation
  // (the transport then sets DEVICE_NEEDS_RESET). Register loop fds here.
  virtual void on_activate() = 0;
  // Before the queues are dropped: unregister loop fds, drop connections.
  virtual void on_reset() {}
  // stop_queues(), before the ring positions are read: finish every chain
  // popped so far (a device with asynchronous I/O waits for it), so
  // next_avail and next_used say exactly where the rings resume.
  virtual void on_quiesce() {}
  // stop_queues(), before the queues are dropped: make sure no loop handler
  // touches the rings or guest memory until on_restart_queues() (activated()
  // is already false, which the usual `activated() && !broken()` guards
  // see). The default resets the device (on_reset(), every watched fd
  // unregistered): right for devices whose state is worth nothing across a
  // stop. A device with long-lived state (vsock connections) overrides both.
  virtual void on_stop_queues() {
    on_reset();
    unwatch_all();
  }
  // restart_queues(), once the queues are rebuilt over the new memory and
  // activated() is true again. The default activates anew. May throw
  // common::Error like on_activate().
  virtual void on_restart_queues() { on_activate(); }
  // Counts a malformed request (Firecracker's invalid_reqs_count/...); the
  // default does nothing beyond the log line.
  virtual void count_invalid() {}
  virtual void count_activate_fail() {}

  const GuestMemory& memory() const { return *memory_; }
  Queue& queue(uint16_t index) { return queues_[index]; }
  size_t queue_count() const { return queues_.size(); }
  Interrupt& interrupt() { return *interrupt_; }
  common::EventLoop& loop() { return *loop_; }
  uint64_t acked_features() const { return acked_features_; }
  bool acked(unsigned bit) const { return acked_features_ & (uint64_t(1) << bit); }
  Logger& logger() { return logger_; }
  bool broken() const { return broken_; }

  // Raises the used-buffer interrupt for queue `index` if the driver wants one.
  void signal_used(uint16_t index);
  // Logs `message` once per device (later hostile input is only counted).
  void report_invalid(const std::string& message);
  // Stops the device for good until reset: logs once, sets needs_reset(),
  // raises a config-change interrupt (§2.1.2).
  void mark_broken(const std::string& message);

  // Registers `fd` in the device's loop and remembers it, so reset() and the
  // destructor of the device unregister it.
  void watch(int fd, uint32_t events, common::EventLoop::Handler handler);
  void unwatch(int fd);
  void unwatch_all();

 private:
  // Builds the queues from `context` and takes over its memory, interrupt,
  // loop and features; throws common::Error (QueueError) on a bad layout.
  void build_queues(const ActivationContext& context);
  // Why `context` does not continue the stopped queues ("" when it does).
  std::string restart_mismatch(const ActivationContext& context) const;

  Logger& logger_;
  std::string name_;
  bool activated_ = false;
  bool stopped_ = false;  // activated, queues stopped (stopped_at_ holds them)
  std::vector<QueueState> stopped_at_;
  bool broken_ = false;
  bool invalid_logged_ = false;
  const GuestMemory* memory_ = nullptr;
  Interrupt* interrupt_ = nullptr;
  common::EventLoop* loop_ = nullptr;
  uint64_t acked_features_ = 0;
  std::vector<Queue> queues_;
  std::vector<int> watched_;
};

}  // namespace ember::vmm::virtio
