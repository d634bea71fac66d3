// The cgroup hierarchy as crun's cgroupfs manager lays it out: cgroup v2
// (the guest: one unified tree) or v1 (this development host: one tree per
// controller). Reads the figures behind ContainerStats and counts OOM kills.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "vmm/common/unique_fd.h"

namespace ember::agent {

struct CgroupStats {
  int version = 0;
  // cpu
  uint64_t cpu_usage_usec = 0, cpu_user_usec = 0, cpu_system_usec = 0;
  uint64_t cpu_nr_periods = 0, cpu_nr_throttled = 0, cpu_throttled_usec = 0;
  std::vector<uint64_t> cpu_percpu_nsec;
  // memory
  uint64_t mem_usage = 0, mem_limit = 0, mem_max_usage = 0, mem_swap_usage = 0, mem_swap_limit = 0;
  uint64_t mem_failcnt = 0, mem_oom_kills = 0;
  std::map<std::string, uint64_t> mem_stat;
  uint64_t mem_inactive_file = 0, mem_rss = 0, mem_cache = 0;
  // pids
  uint64_t pids_current = 0, pids_limit = 0;
};

// The few memory figures the agent samples periodically to tell a container
// that thrashes at its limit (see memory_watch.h). Counters only grow.
struct MemorySample {
  bool valid = false;       // false: the cgroup could not be read
  uint64_t limit = 0;       // bytes; UINT64_MAX when there is none
  uint64_t usage = 0;       // bytes
  uint64_t limit_hits = 0;  // v2 memory.events "max"; v1 memory.failcnt
  uint64_t oom_kills = 0;
  // Pages read back in soon after reclaim evicted them (workingset refaults,
  // file + anon); major faults where the kernel has no such counter.
  uint64_t refaults = 0;
};

class Cgroups {
 public:
  // Reads the cgroup mounts from a mountinfo file. v1 wins when the memory
  // controller is on a v1 hierarchy (crun then uses v1 too).
  static Cgroups detect(const std::string& mountinfo = "/proc/self/mountinfo");

  int version() const { return version_; }
  // v2: <unified>/<path>. v1: <mount of controller>/<path>; "" if the
  // controller is not mounted.
  std::string dir(const std::string& path, const std::string& controller = "memory") const;

  CgroupStats stats(const std::string& path) const;
  // The cgroup's (hierarchical) OOM kill counter; 0 if it cannot be read.
  uint64_t oom_kills(const std::string& path) const;
  MemorySample memory_sample(const std::string& path) const;
  // Every pid in the cgroup and its descendants.
  std::vector<pid_t> pids(const std::string& path) const;
  // Removes the cgroup directory in every hierarchy (leaves only; children
  // first). Returns what could not be removed.
  std::vector<std::string> remove(const std::string& path) const;

  // An fd that becomes readable when the cgroup may have seen an OOM kill:
  // inotify on memory.events (v2), or an eventfd registered through
  // cgroup.event_control for memory.oom_control (v1). Throws if the cgroup
  // does not exist.
  common::UniqueFd oom_notifier(const std::string& path) const;
  // Clears the readiness of an oom_notifier fd.
  static void drain_notifier(int fd);

 private:
  int version_ = 0;
  std::string unified_;                           // v2 mount point
  std::map<std::string, std::string> v1_mounts_;  // controller -> mount point
};

}  // namespace ember::agent
