#include "guest-agent/agent/loop_timer.h"

#include <sys/timerfd.h>
#include <unistd.h>

#include <cstdint>

#include "vmm/common/error.h"

namespace ember::agent {

LoopTimer::LoopTimer(common::EventLoop& loop, std::function<void()> on_fire)
    : loop_(loop),
      fd_(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)),
      on_fire_(std::move(on_fire)) {
  if (!fd_) common::throw_errno("timerfd_create");
  loop_.add(fd_.get(), EPOLLIN, [this](uint32_t) {
    uint64_t expirations = 0;
    if (::read(fd_.get(), &expirations, sizeof expirations) != sizeof expirations) return;
    armed_ = false;
    on_fire_();  // may destroy this timer: nothing after this line
  });
}

LoopTimer::~LoopTimer() { loop_.remove(fd_.get()); }

void LoopTimer::arm(std::chrono::milliseconds delay) {
  itimerspec spec{};
  auto ms = std::max<int64_t>(delay.count(), 1);
  spec.it_value.tv_sec = ms / 1000;
  spec.it_value.tv_nsec = (ms % 1000) * 1000000;
  if (::timerfd_settime(fd_.get(), 0, &spec, nullptr) < 0) common::throw_errno("timerfd_settime");
  armed_ = true;
}

void LoopTimer::cancel() {
  itimerspec spec{};
  ::timerfd_settime(fd_.get(), 0, &spec, nullptr);
  armed_ = false;
}

}  // namespace ember::agent
