#include "guest-agent/agent/event_queue.h"

namespace ember::agent {

uint64_t EventQueue::push(AgentEvent event) {
  uint64_t seq;
  {
    std::lock_guard lock(mutex_);
    seq = next_++;
    event.sequence = seq;
    events_.push_back(std::move(event));
    if (events_.size() > capacity_) events_.pop_front();
  }
  cv_.notify_all();
  return seq;
}

std::optional<AgentEvent> EventQueue::wait_next(
    uint64_t after, std::optional<std::chrono::steady_clock::time_point> deadline,
    const std::function<bool()>& cancelled) {
  std::unique_lock lock(mutex_);
  for (;;) {
    for (const auto& e : events_) {
      if (e.sequence > after) return e;
    }
    if (cancelled && cancelled()) return std::nullopt;
    if (deadline) {
      if (cv_.wait_until(lock, *deadline) == std::cv_status::timeout) {
        for (const auto& e : events_) {
          if (e.sequence > after) return e;
        }
        return std::nullopt;
      }
    } else {
      cv_.wait(lock);
    }
  }
}

void EventQueue::wake_all() {
  { std::lock_guard lock(mutex_); }
  cv_.notify_all();
}

uint64_t EventQueue::oldest_sequence() const {
  std::lock_guard lock(mutex_);
  return events_.empty() ? next_ : events_.front().sequence;
}

uint64_t EventQueue::last_sequence() const {
  std::lock_guard lock(mutex_);
  return next_ - 1;
}

}  // namespace ember::agent
