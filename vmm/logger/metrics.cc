#include "vmm/logger/metrics.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "vmm/common/error.h"

namespace ember::vmm {

Metrics::Metrics(std::string instance_id) : instance_id_(std::move(instance_id)) {}

Counter& Metrics::counter(const std::string& group, const std::string& name, Kind kind) {
  std::lock_guard lock(mutex_);
  auto& entry = groups_[group][name];
  if (!entry.counter) {
    entry.kind = kind;
    entry.counter = std::make_unique<Counter>();
  }
  return *entry.counter;
}

void Metrics::configure(const MetricsConfig& config) {
  std::lock_guard lock(mutex_);
  if (config_) throw common::Error("Reinitialization of metrics not allowed.");
  common::UniqueFd fd(::open(config.metrics_path.c_str(), O_RDWR | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0644));
  if (!fd) common::throw_errno("open metrics file " + config.metrics_path);
  fd_ = std::move(fd);
  config_ = config;
}

bool Metrics::configured() const {
  std::lock_guard lock(mutex_);
  return config_.has_value();
}

std::string Metrics::serialize() {
  std::lock_guard lock(mutex_);
  nlohmann::ordered_json out;
  auto now = std::chrono::system_clock::now().time_since_epoch();
  out["utc_timestamp_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(now).count();
  if (config_ && config_->emit_id) out["id"] = instance_id_;
  if (config_ && !config_->properties.empty()) out["properties"] = config_->properties;
  for (auto& [group, entries] : groups_) {
    nlohmann::ordered_json g = nlohmann::ordered_json::object();
    for (auto& [name, entry] : entries) {
      uint64_t value = entry.counter->load();
      if (entry.kind == Kind::kCounter) {
        g[name] = value - entry.last_flushed;
        entry.last_flushed = value;
      } else {
        g[name] = value;
      }
    }
    out[group] = std::move(g);
  }
  return out.dump();
}

bool Metrics::flush() {
  if (!configured()) return false;
  std::string line = serialize() + "\n";
  std::lock_guard lock(mutex_);
  if (::write(fd_.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    return false;
  }
  return true;
}

}  // namespace ember::vmm
