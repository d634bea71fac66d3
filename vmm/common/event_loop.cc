#include "vmm/common/event_loop.h"

#include <cerrno>
#include <string>

#include "vmm/common/error.h"

namespace ember::common {
namespace {
// The epoll user data packs fd and generation so a stale event for an fd that
// was removed (and maybe re-added) in the same batch is recognised and dropped.
uint64_t pack(int fd, uint64_t generation) {
  return (generation << 32) | static_cast<uint32_t>(fd);
}
constexpr int kWakeTag = -1;
}  // namespace

EventLoop::EventLoop() : epoll_(::epoll_create1(EPOLL_CLOEXEC)) {
  if (!epoll_) throw_errno("epoll_create1");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = pack(kWakeTag, 0);
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.fd(), &ev) < 0) throw_errno("epoll_ctl add wake eventfd");
}

void EventLoop::add(int fd, uint32_t events, Handler handler) {
  if (handlers_.count(fd)) throw Error("event loop: fd " + std::to_string(fd) + " is already watched");
  uint64_t gen = next_generation_++ & 0xffffffff;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = pack(fd, gen);
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) < 0) throw_errno("epoll_ctl add fd " + std::to_string(fd));
  handlers_.emplace(fd, Entry{gen, std::make_shared<Handler>(std::move(handler))});
}

void EventLoop::modify(int fd, uint32_t events) {
  auto it = handlers_.find(fd);
  if (it == handlers_.end()) throw Error("event loop: fd " + std::to_string(fd) + " is not watched");
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = pack(fd, it->second.generation);
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &ev) < 0) throw_errno("epoll_ctl mod fd " + std::to_string(fd));
}

void EventLoop::remove(int fd) {
  if (handlers_.erase(fd) == 0) return;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
}

void EventLoop::run() {
  while (run_once(-1)) {
  }
}

bool EventLoop::run_once(int timeout_ms) {
  {
    std::lock_guard lock(posted_mutex_);
    if (stopping_) return false;
  }
  epoll_event events[64];
  int n = ::epoll_wait(epoll_.get(), events, 64, timeout_ms);
  if (n < 0) {
    if (errno == EINTR) return true;
    throw_errno("epoll_wait");
  }
  for (int i = 0; i < n; ++i) {
    int fd = static_cast<int32_t>(events[i].data.u64 & 0xffffffff);
    uint64_t gen = events[i].data.u64 >> 32;
    if (fd == kWakeTag) {
      wake_.consume();
      drain_posted();
      continue;
    }
    auto it = handlers_.find(fd);
    if (it == handlers_.end() || it->second.generation != gen) continue;
    // Hold a reference: the handler may remove itself.
    std::shared_ptr<Handler> handler = it->second.handler;
    (*handler)(events[i].events);
  }
  std::lock_guard lock(posted_mutex_);
  return !stopping_;
}

void EventLoop::stop() {
  {
    std::lock_guard lock(posted_mutex_);
    stopping_ = true;
  }
  wake_.signal();
}

void EventLoop::post(std::function<void()> task) {
  {
    std::lock_guard lock(posted_mutex_);
    posted_.push_back(std::move(task));
  }
  wake_.signal();
}

void EventLoop::drain_posted() {
  std::deque<std::function<void()>> tasks;
  {
    std::lock_guard lock(posted_mutex_);
    tasks.swap(posted_);
  }
  for (auto& task : tasks) task();
}

}  // namespace ember::common
