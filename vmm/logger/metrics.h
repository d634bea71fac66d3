// Firecracker-style metrics (reference/firecracker-compat.md §6): named groups
// of counters, written as one JSON object per line:
//   {"utc_timestamp_ms":...,["id":...,]["properties":{...},]"api_server":{...},"balloon":{...},...}
// Every group and key of Firecracker's schema is always present (zeros for
// devices that do not exist), so tools validating the schema
// (tests/host_tools/fcmetrics.py upstream) accept every line. Counters report
// the delta since the previous line; stores (startup times, latencies,
// min_us/max_us) report their absolute value.
//
// Groups named `block_<drive_id>` and `net_<iface_id>` get the whole block/net
// key set; `vhost_user_<x>` the vhost-user set. Devices count in their own
// group and in the aggregate (`block`, `net`) themselves. A name with a dot
// ("read_agg.min_us") is a key of a nested object.
//
// Code that counts asks once for a Counter& and keeps it: the address is
// stable for the life of the Metrics object and increments are lock-free.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

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
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;
  ~Metrics();

  // Finds or creates `group.name`. For keys of Firecracker's schema the kind
  // is the schema's; `kind` only applies to keys ember adds. Safe from any thread.
  Counter& counter(const std::string& group, const std::string& name, Kind kind = Kind::kCounter);

  // PUT /metrics or --metrics-path; only once. Throws common::Error
  // "Reinitialization of metrics not allowed." the second time, and
  // common::SystemError (errno kept) when metrics_path cannot be opened.
  void configure(const MetricsConfig& config);
  bool configured() const;
  void set_instance_id(std::string id);

  // One JSON line (no newline) with counters as deltas since the last call.
  // Advances the delta baseline.
  std::string serialize();
  // serialize() and write the line to metrics_path. Returns false if metrics
  // are not configured or the write failed (counted in logger.missed_metrics_count).
  bool flush();

 private:
  struct Entry {
    std::string name;
    Kind kind;
    std::unique_ptr<Counter> counter;
    uint64_t last_flushed = 0;
  };
  struct Group {
    std::string name;
    std::vector<Entry> entries;
  };

  void ensure_schema_locked();
  Group& group_locked(const std::string& name);
  void serialize_group_locked(Group& group, std::string& out);

  mutable std::mutex mutex_;
  std::string instance_id_;
  std::optional<MetricsConfig> config_;
  common::UniqueFd fd_;
  std::vector<std::unique_ptr<Group>> groups_;  // serialization order
  bool schema_ready_ = false;
};

}  // namespace ember::vmm
