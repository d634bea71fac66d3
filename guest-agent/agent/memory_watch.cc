#include "guest-agent/agent/memory_watch.h"

namespace ember::agent {

MemoryThrashWatch::Report MemoryThrashWatch::update(const MemorySample& sample,
                                                    std::chrono::steady_clock::time_point now) {
  using std::chrono::duration_cast;
  using std::chrono::milliseconds;
  Report r;
  if (!sample.valid) return r;
  if (!have_last_) {
    have_last_ = true;
    last_ = sample;
    last_at_ = now;
    return r;
  }
  r.interval = duration_cast<milliseconds>(now - last_at_);
  // Counters only grow; a smaller value means a different cgroup: start over.
  bool sane = sample.limit_hits >= last_.limit_hits && sample.oom_kills >= last_.oom_kills &&
              sample.refaults >= last_.refaults && r.interval.count() > 0;
  if (sane) {
    r.refaults = sample.refaults - last_.refaults;
    r.limit_hits = sample.limit_hits - last_.limit_hits;
  }
  uint64_t needed =
      thresholds_.refault_pages_per_second * static_cast<uint64_t>(r.interval.count()) / 1000;
  // At the limit: it was hit during the interval, or (where the kernel does
  // not count that: cgroup v1's failcnt stays 0 on recent kernels) usage is
  // within 1/16 of it now; reclaim keeps a thrashing cgroup right below it.
  bool has_limit = sample.limit > 0 && sample.limit < (uint64_t{1} << 62);
  bool at_limit =
      r.limit_hits > 0 || (has_limit && sample.usage >= sample.limit - sample.limit / 16);
  bool thrashing = sane && at_limit && sample.oom_kills == last_.oom_kills && r.refaults > 0 &&
                   r.refaults >= needed;
  last_ = sample;
  last_at_ = now;

  if (!thrashing) {
    streak_ = 0;
    if (reported_) {
      reported_ = false;
      r.change = Change::kEnded;
      r.duration = duration_cast<milliseconds>(now - episode_start_);
      r.episode_refaults = episode_refaults_;
    }
    return r;
  }
  if (streak_++ == 0) {
    episode_start_ = now - r.interval;
    episode_refaults_ = 0;
  }
  episode_refaults_ += r.refaults;
  r.duration = duration_cast<milliseconds>(now - episode_start_);
  r.episode_refaults = episode_refaults_;
  if (!reported_) {
    if (streak_ < thresholds_.intervals_to_report) return r;
    reported_ = true;
    last_report_ = now;
    r.change = Change::kStarted;
    return r;
  }
  if (now - last_report_ >= thresholds_.repeat_every) {
    last_report_ = now;
    r.change = Change::kContinues;
  }
  return r;
}

}  // namespace ember::agent
