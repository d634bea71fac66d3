// The agent's event log for WaitEvent: OOM kills and process exits, each with
// a sequence number, kept in a bounded queue so a host that reconnects can
// resume where it left off. Written on the event loop, read by RPC handler
// threads blocking in wait_next().
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

namespace ember::agent {

struct AgentEvent {
  enum class Kind { kOom, kExit };
  uint64_t sequence = 0;
  Kind kind = Kind::kExit;
  std::string container_id;
  std::string exec_id;
  uint32_t pid = 0;
  uint32_t exit_status = 0;
  std::chrono::system_clock::time_point exited_at;
  bool oom_killed = false;
};

class EventQueue {
 public:
  explicit EventQueue(std::size_t capacity = 1024) : capacity_(capacity) {}

  // Assigns the next sequence number; returns it.
  uint64_t push(AgentEvent event);

  // The first event with sequence > after, waiting until `deadline` (nullopt:
  // forever) or until cancelled() turns true (checked whenever wake_all() is
  // called, e.g. from a ttrpc cancel callback).
  std::optional<AgentEvent> wait_next(uint64_t after,
                                      std::optional<std::chrono::steady_clock::time_point> deadline,
                                      const std::function<bool()>& cancelled);
  void wake_all();

  uint64_t oldest_sequence() const;
  uint64_t last_sequence() const;

 private:
  std::size_t capacity_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<AgentEvent> events_;
  uint64_t next_ = 1;
};

}  // namespace ember::agent
