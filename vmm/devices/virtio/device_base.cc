#include "vmm/devices/virtio/device_base.h"

#include <algorithm>

namespace ember::vmm::virtio {

DeviceBase::DeviceBase(Logger& logger, std::string name)
    : logger_(logger), name_(std::move(name)) {}

void DeviceBase::activate(ActivationContext context) {
  if (activated_) throw common::Error(name_ + ": activated twice without a reset");
  std::vector<uint16_t> max_sizes = queue_max_sizes();
  try {
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
  broken_ = false;
  invalid_logged_ = false;
}

QueueState DeviceBase::queue_state(uint16_t index) const {
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
