// A single-threaded epoll loop. Owner thread calls run(); other threads hand
// work over with post() (one queue + eventfd, no shared mutable state).
#pragma once

#include <sys/epoll.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "vmm/common/event_fd.h"
#include "vmm/common/unique_fd.h"

namespace ember::common {

class EventLoop {
 public:
  using Handler = std::function<void(uint32_t events)>;

  EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Watches `fd` (borrowed; the caller keeps it open until remove()).
  // `events` is an EPOLLIN/EPOLLOUT/... mask. Throws if fd is already watched.
  void add(int fd, uint32_t events, Handler handler);
  void modify(int fd, uint32_t events);
  // Safe to call from inside a handler, including the fd's own.
  void remove(int fd);
  bool watches(int fd) const { return handlers_.count(fd) != 0; }

  // Runs handlers until stop(). Exceptions from handlers propagate out of run().
  void run();
  // Waits at most `timeout_ms` (-1 = forever) and dispatches once. Returns
  // false once stop() has been requested.
  bool run_once(int timeout_ms);

  // Thread-safe.
  void stop();
  void post(std::function<void()> task);

 private:
  struct Entry {
    uint64_t generation;
    std::shared_ptr<Handler> handler;
  };
  void drain_posted();

  UniqueFd epoll_;
  EventFd wake_;
  std::unordered_map<int, Entry> handlers_;
  uint64_t next_generation_ = 1;
  std::mutex posted_mutex_;
  std::deque<std::function<void()>> posted_;
  bool stopping_ = false;  // guarded by posted_mutex_
};

}  // namespace ember::common
