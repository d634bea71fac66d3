// Firecracker-style metrics (reference/firecracker-compat.md §6): named groups of
// counters, written as one JSON object per line. Counters report the delta since
// the previous flush; stores report their absolute value.
//
// Code that counts asks once for a Counter& and keeps it: the address is stable
// for the life of the Metrics object and increments are lock-free.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "vmm/common/unique_fd.h"
#include "vmm/vmm_config/vmm_config.h"

namespace ember::vmm {

class Counter {
 public:
  void inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  void store(uint64_t v) { value_.store(v, std::memory_order_relaxed); }
  uint64_t load() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Metrics {
 public:
  enum class Kind { kCounter, kStore };

  explicit Metrics(std::string instance_id = "anonymous-instance");

  // Finds or creates `group.name`. Safe from any thread.
  Counter& counter(const std::string& group, const std::string& name, Kind kind = Kind::kCounter);

  // PUT /metrics or --metrics-path; only once ("Reinitialization of metrics not allowed.").
  void configure(const MetricsConfig& config);
  bool configured() const;

  // One JSON line: {"utc_timestamp_ms":..., [id, properties,] "<group>":{...}, ...}
  // with counters as deltas since the last call. Advances the delta baseline.
  std::string serialize();
  // serialize() and write the line to metrics_path; returns false if not configured.
  bool flush();

 private:
  struct Entry {
    Kind kind;
    std::unique_ptr<Counter> counter;
    uint64_t last_flushed = 0;
  };

  mutable std::mutex mutex_;
  std::string instance_id_;
  std::optional<MetricsConfig> config_;
  common::UniqueFd fd_;
  std::map<std::string, std::map<std::string, Entry>> groups_;
};

}  // namespace ember::vmm
