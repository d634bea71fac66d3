// Reaps every child of the agent. The agent is PID 1 in the guest (and a child
// subreaper in host mode), so besides its own children (crun) it inherits
// container init and exec processes once crun exits, plus any orphan whose
// container has no pid namespace of its own. One SIGCHLD signalfd on the event
// loop, waitpid(-1) until nothing is left, and the status handed to whoever
// watches that pid.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <unordered_map>

#include "vmm/common/event_loop.h"
#include "vmm/common/unique_fd.h"

namespace ember::agent {

class Reaper {
 public:
  using Callback = std::function<void(int wait_status)>;

  // SIGCHLD must already be blocked in every thread (block_child_signal()),
  // otherwise the signalfd misses it.
  explicit Reaper(common::EventLoop& loop);
  ~Reaper();
  Reaper(const Reaper&) = delete;
  Reaper& operator=(const Reaper&) = delete;

  // Blocks SIGCHLD in the calling thread; call before starting any thread.
  static void block_child_signal();

  // A monotonically increasing mark of reap events, for watch(): statuses
  // reaped before a mark was taken are never matched to a later watcher.
  uint64_t mark() const { return seq_; }

  // Calls `callback` (on the loop) when `pid` is reaped. If `pid` was already
  // reaped unclaimed at or after `since` (a mark taken before the process
  // could have been created), the callback is posted at once. Loop thread only.
  void watch(pid_t pid, Callback callback, uint64_t since);
  void unwatch(pid_t pid);

  // Reaps everything that is ready now. Loop thread only.
  void reap();

 private:
  struct Unclaimed {
    pid_t pid;
    int status;
    uint64_t seq;
  };
  static constexpr std::size_t kMaxUnclaimed = 256;

  common::EventLoop& loop_;
  common::UniqueFd signal_fd_;
  std::unordered_map<pid_t, Callback> watchers_;
  std::deque<Unclaimed> unclaimed_;
  uint64_t seq_ = 0;
};

}  // namespace ember::agent
