// A one-shot timer on an EventLoop (timerfd), re-armable, disarmed on
// destruction.
#pragma once

#include <chrono>
#include <functional>

#include "vmm/common/event_loop.h"
#include "vmm/common/unique_fd.h"

namespace ember::agent {

class LoopTimer {
 public:
  LoopTimer(common::EventLoop& loop, std::function<void()> on_fire);
  ~LoopTimer();
  LoopTimer(const LoopTimer&) = delete;
  LoopTimer& operator=(const LoopTimer&) = delete;

  void arm(std::chrono::milliseconds delay);
  void cancel();
  bool armed() const { return armed_; }

 private:
  common::EventLoop& loop_;
  common::UniqueFd fd_;
  std::function<void()> on_fire_;
  bool armed_ = false;
};

}  // namespace ember::agent
