// Tells when a container thrashes at its memory limit without the kernel
// OOM-killing anything, from periodic MemorySamples of its cgroup.
//
// Why the agent has to notice this itself: a memory cgroup invokes its OOM
// killer only when one charge has gone through 16 reclaim passes that freed
// *nothing* (mm/memcontrol.c try_charge_memcg, MAX_RECLAIM_RETRIES); a pass
// that frees a page lets the charge retry and succeed. When the container's
// anonymous memory fills the limit and there is no swap, reclaim can still
// evict the file pages of the container's own programs (busybox, libc),
// which they read back from disk a moment later, and evict again: every pass
// makes "progress", the OOM killer never runs, and the container neither
// finishes nor dies. Nothing exits, so WaitProcess blocks (rightly: the
// process runs). The kernel's own signal for this is PSI (memory.pressure),
// which the guest kernel does not have; the refault counter shows the same
// thing: pages evicted and read back while the cgroup keeps hitting its limit
// and nothing is killed.
#pragma once

#include <chrono>
#include <cstdint>

#include "guest-agent/agent/cgroups.h"

namespace ember::agent {

class MemoryThrashWatch {
 public:
  struct Thresholds {
    // An interval counts as thrashing when the cgroup was at its limit (hit
    // it, or uses all but 1/16 of it), nothing was OOM-killed, and at least
    // this many pages per second were refaulted.
    uint64_t refault_pages_per_second = 256;  // 1 MiB/s of 4 KiB pages
    // Reported after this many thrashing intervals in a row (one interval is
    // a short burst, e.g. a process briefly above its working set).
    int intervals_to_report = 2;
    // While it lasts, reported again this often.
    std::chrono::milliseconds repeat_every{60000};
  };

  enum class Change { kNone, kStarted, kContinues, kEnded };
  struct Report {
    Change change = Change::kNone;
    // Over the last interval.
    uint64_t refaults = 0, limit_hits = 0;
    std::chrono::milliseconds interval{0};
    // Since the first thrashing interval of this episode.
    std::chrono::milliseconds duration{0};
    uint64_t episode_refaults = 0;
  };

  MemoryThrashWatch() = default;
  explicit MemoryThrashWatch(Thresholds thresholds) : thresholds_(thresholds) {}

  // One sample per interval, in time order. kStarted once per episode, then
  // kContinues every `repeat_every`, kEnded after the first quiet interval of
  // a reported episode; kNone otherwise.
  Report update(const MemorySample& sample, std::chrono::steady_clock::time_point now);

  bool reported() const { return reported_; }

 private:
  Thresholds thresholds_;
  bool have_last_ = false;
  MemorySample last_;
  std::chrono::steady_clock::time_point last_at_;
  int streak_ = 0;
  bool reported_ = false;
  std::chrono::steady_clock::time_point episode_start_, last_report_;
  uint64_t episode_refaults_ = 0;
};

}  // namespace ember::agent
