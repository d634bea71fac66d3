#include "proto/ttrpc/context.h"

#include <utility>

namespace ember::ttrpc {

Context::Context(std::string service, std::string method, Metadata metadata,
                 std::optional<Clock::time_point> deadline)
    : service_(std::move(service)),
      method_(std::move(method)),
      metadata_(std::move(metadata)),
      deadline_(deadline) {}

void Context::on_cancel(std::function<void()> fn) {
  {
    std::lock_guard lock(mu_);
    if (finished_) return;
    if (!cancelled()) {
      callbacks_.push_back(std::move(fn));
      return;
    }
  }
  fn();
}

void Context::cancel() {
  std::vector<std::function<void()>> callbacks;
  {
    std::lock_guard lock(mu_);
    if (cancelled_.exchange(true, std::memory_order_acq_rel)) return;
    callbacks = std::exchange(callbacks_, {});
    running_callbacks_ = !callbacks.empty();
  }
  // Run without the lock (a callback may take the handler's mutex while the
  // handler holds it and calls on_cancel()); finish() waits for us instead.
  for (auto& fn : callbacks) fn();
  if (!callbacks.empty()) {
    std::lock_guard lock(mu_);
    running_callbacks_ = false;
    callbacks_done_.notify_all();
  }
}

void Context::finish() {
  std::unique_lock lock(mu_);
  finished_ = true;
  callbacks_.clear();
  callbacks_done_.wait(lock, [this] { return !running_callbacks_; });
}

}  // namespace ember::ttrpc
