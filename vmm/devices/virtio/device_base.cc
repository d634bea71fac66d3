#include "vmm/devices/virtio/device_base.h"

#include <algorithm>

namespace ember::vmm::virtio {

DeviceBase::DeviceBase(Logger& logger, std::string name)
    : logger_(logger), name_(std::move(name)) {}

void DeviceBase::build_queues(const ActivationContext& context) {
  std::vector<uint16_t> max_sizes = queue_max_sizes();
  if (context.queues.size() != max_sizes.size()) {
    throw common::Error(name_ + ": transport passed " + std::to_string(context.queues.size()) +
                        " queues, the device has " + std::to_string(max_sizes.size()));
  }
  std::vector<Queue> queues;
  queues.reserve(context.queues.size());
  for (size_t i = 0; i < context.queues.size(); ++i) {
    // The transport sets state.max_size: virtio-mmio advertises
    // queue_max_sizes() and passes it; over vhost-user the frontend picks
    // the ring size (QEMU's virtio-mmio always offers 1024 entries) and the
    // transport passes the protocol's limit. Queue checks size <= max_size.
    QueueState state = context.queues[i];
    queues.emplace_back(context.memory, state, context.acked_features,
                        name_ + " queue " + std::to_string(i));
    queues.back().set_error_handler([this](const std::string& message, bool fatal) {
      if (fatal) {
        mark_broken(message);
      } else {
        count_invalid();
        report_invalid(message);
      }
    });
  }
  memory_ = &context.memory;
  interrupt_ = &context.interrupt;
  loop_ = &context.loop;
  acked_features_ = context.acked_features;
  queues_ = std::move(queues);
}

void DeviceBase::activate(ActivationContext context) {
  // Activating a device whose queues are stopped is a new start: whatever
  // the driver had with it before is gone.
  if (activated_ && stopped_) reset();
  if (activated_) throw common::Error(name_ + ": activated twice without a reset");
  try {
    build_queues(context);
    broken_ = false;
    on_activate();
  } catch (const common::Error& e) {
    count_activate_fail();
    unwatch_all();
    queues_.clear();
    LOG_ERROR(logger_, name_ + ": activation failed: " + e.what());
    throw;
  }
  activated_ = true;
}

void DeviceBase::reset() {
  if (activated_) on_reset();
  unwatch_all();
  queues_.clear();
  activated_ = false;
  stopped_ = false;
  stopped_at_.clear();
  broken_ = false;
  invalid_logged_ = false;
}

std::vector<QueueState> DeviceBase::stop_queues() {
  std::vector<QueueState> positions;
  if (!activated_ || stopped_) {
    for (size_t i = 0; i < queue_max_sizes().size(); ++i)
      positions.push_back(queue_state(static_cast<uint16_t>(i)));
    return positions;
  }
  // Once every popped chain is completed or put back, next_avail is exactly
  // where the ring resumes: what vhost-user's GET_VRING_BASE must report.
  on_quiesce();
  for (const Queue& q : queues_) positions.push_back(q.state());
  stopped_ = true;
  on_stop_queues();
  stopped_at_ = positions;
  // The transport may unmap this memory before the restart.
  queues_.clear();
  memory_ = nullptr;
  LOG_DEBUG(logger_, name_ + ": queues stopped, device state kept");
  return positions;
}

std::string DeviceBase::restart_mismatch(const ActivationContext& context) const {
  if (context.acked_features != acked_features_) return "the driver negotiated other features";
  if (context.queues.size() != stopped_at_.size()) return "another number of queues";
  for (size_t i = 0; i < stopped_at_.size(); ++i) {
    const QueueState& was = stopped_at_[i];
    const QueueState& now = context.queues[i];
    std::string queue = "queue " + std::to_string(i);
    if (now.size != was.size || now.desc_table != was.desc_table ||
        now.avail_ring != was.avail_ring || now.used_ring != was.used_ring) {
      return queue + " moved or changed size";
    }
    if (now.next_avail != was.next_avail || now.next_used != was.next_used) {
      return queue + " restarts at avail " + std::to_string(now.next_avail) + " used " +
             std::to_string(now.next_used) + ", it stopped at avail " +
             std::to_string(was.next_avail) + " used " + std::to_string(was.next_used);
    }
  }
  return "";
}

void DeviceBase::restart_queues(ActivationContext context) {
  if (!activated_ || !stopped_) {
    activate(std::move(context));
    return;
  }
  if (std::string why = restart_mismatch(context); !why.empty()) {
    // QEMU restarts a virtqueue the driver reset at index 0 (and the driver
    // lays its rings out anew): the device must not carry state over.
    LOG_INFO(logger_, name_ + ": rings do not continue where they stopped (" + why +
                          "): the driver reset the device; starting afresh");
    reset();
    activate(std::move(context));
    return;
  }
  try {
    build_queues(context);
    stopped_ = false;
    stopped_at_.clear();
    on_restart_queues();
  } catch (const common::Error& e) {
    count_activate_fail();
    LOG_ERROR(logger_, name_ + ": restarting the queues failed, resetting the device: " + e.what());
    reset();
    throw;
  }
  LOG_DEBUG(logger_, name_ + ": queues restarted with the device state kept");
}

QueueState DeviceBase::queue_state(uint16_t index) const {
  if (stopped_ && index < stopped_at_.size()) return stopped_at_[index];
  if (index < queues_.size()) return queues_[index].state();
  QueueState state;
  std::vector<uint16_t> sizes = queue_max_sizes();
  if (index < sizes.size()) state.max_size = sizes[index];
  return state;
}

void DeviceBase::signal_used(uint16_t index) {
  if (index < queues_.size() && queues_[index].needs_interrupt())
    interrupt_->signal_used_queue(index);
}

void DeviceBase::report_invalid(const std::string& message) {
  if (invalid_logged_) return;
  invalid_logged_ = true;
  LOG_WARN(logger_,
           name_ + ": rejected malformed request (further ones are only counted): " + message);
}

void DeviceBase::mark_broken(const std::string& message) {
  if (broken_) return;
  broken_ = true;
  LOG_ERROR(logger_, name_ + ": device needs reset: " + message);
  if (interrupt_) interrupt_->signal_config_change();
}

void DeviceBase::watch(int fd, uint32_t events, common::EventLoop::Handler handler) {
  loop_->add(fd, events, std::move(handler));
  watched_.push_back(fd);
}

void DeviceBase::unwatch(int fd) {
  auto it = std::find(watched_.begin(), watched_.end(), fd);
  if (it == watched_.end()) return;
  watched_.erase(it);
  loop_->remove(fd);
}

void DeviceBase::unwatch_all() {
  for (int fd : watched_) loop_->remove(fd);
  watched_.clear();
}

}  // namespace ember::vmm::virtio
