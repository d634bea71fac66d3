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
#include <unordered_set>
#include <vector>

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

  // What a watcher gets for a pid whose exit the agent can never reap: exited
  // 255, containerd's status for an exit it could not learn.
  static constexpr int kLostStatus = 255 << 8;

  // Calls `callback` (on the loop) when `pid` is reaped. If `pid` was already
  // reaped unclaimed at or after `since` (a mark taken before the process
  // could have been created), the callback is posted at once. If `pid` is not
  // a child of the agent at all (its status was reaped and then dropped from
  // the unclaimed list, or it was never ours), no exit would ever come: the
  // callback is posted with kLostStatus and the lost handler is told (at
  // once if no such process exists, else by audit()). Loop thread only.
  void watch(pid_t pid, Callback callback, uint64_t since);
  void unwatch(pid_t pid);

  // Reaps everything that is ready now. Loop thread only.
  void reap();

  // Checks that every watched pid is still a child of the agent (waitid with
  // WNOWAIT: nothing is reaped here) and reports the ones that are not with
  // kLostStatus: at once when the process is gone, at the second audit in a
  // row when it still exists (it may be on its way to the agent as an
  // orphan). A safety net: a watcher must never wait for an exit that cannot
  // come. Returns the pids found lost. Loop thread only.
  std::vector<pid_t> audit();

  // Called (on the loop) with each pid reported with kLostStatus.
  void set_lost_handler(std::function<void(pid_t)> handler) { on_lost_ = std::move(handler); }

 private:
  struct Unclaimed {
    pid_t pid;
    int status;
    uint64_t seq;
  };
  static constexpr std::size_t kMaxUnclaimed = 256;

  void report_lost(pid_t pid, Callback callback);

  common::EventLoop& loop_;
  common::UniqueFd signal_fd_;
  std::unordered_map<pid_t, Callback> watchers_;
  std::deque<Unclaimed> unclaimed_;
  uint64_t seq_ = 0;
  std::function<void(pid_t)> on_lost_;
  std::unordered_set<pid_t> suspects_;  // watched, alive, not our child at the last audit
};

// False when `pid` is not a child of the calling process (waitid ECHILD):
// the caller can never reap it. True for running children and for zombies
// not reaped yet.
bool is_child_process(pid_t pid);
// Whether a process with this pid exists at all (kill(pid, 0)).
bool process_exists(pid_t pid);

}  // namespace ember::agent
