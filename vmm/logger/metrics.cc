#include "vmm/logger/metrics.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <string_view>

#include "vmm/common/error.h"
#include "vmm/common/text.h"

namespace ember::vmm {
namespace {

using Kind = Metrics::Kind;

struct KeySpec {
  const char* name;
  Kind kind;
};

constexpr Kind C = Kind::kCounter;
constexpr Kind S = Kind::kStore;

// Firecracker's metrics schema (src/vmm/src/logger/metrics.rs and the device
// metrics modules; validated upstream by tests/host_tools/fcmetrics.py), in
// serialization order.
#define AGG(prefix) \
  {prefix ".min_us", S}, {prefix ".max_us", S}, { prefix ".sum_us", C }

constexpr KeySpec kApiServer[] = {{"process_startup_time_us", S},
                                  {"process_startup_time_cpu_us", S}};
constexpr KeySpec kBalloon[] = {
    {"activate_fails", C},         {"inflate_count", C},          {"stats_updates_count", C},
    {"stats_update_fails", C},     {"deflate_count", C},          {"event_fails", C},
    {"free_page_report_count", C}, {"free_page_report_freed", C}, {"free_page_report_fails", C},
    {"free_page_hint_count", C},   {"free_page_hint_freed", C},   {"free_page_hint_fails", C}};
constexpr KeySpec kBlock[] = {{"activate_fails", C},
                              {"cfg_fails", C},
                              {"no_avail_buffer", C},
                              {"event_fails", C},
                              {"execute_fails", C},
                              {"invalid_reqs_count", C},
                              {"flush_count", C},
                              {"queue_event_count", C},
                              {"rate_limiter_event_count", C},
                              {"update_count", C},
                              {"update_fails", C},
                              {"read_bytes", C},
                              {"write_bytes", C},
                              {"read_count", C},
                              {"write_count", C},
                              AGG("read_agg"),
                              AGG("write_agg"),
                              {"rate_limiter_throttled_events", C},
                              {"io_engine_throttled_events", C},
                              {"remaining_reqs_count", C}};
constexpr KeySpec kDeprecatedApi[] = {{"deprecated_http_api_calls", C}};
constexpr KeySpec kGetApiRequests[] = {{"instance_info_count", C},
                                       {"machine_cfg_count", C},
                                       {"mmds_count", C},
                                       {"vmm_version_count", C},
                                       {"hotplug_memory_count", C}};
constexpr KeySpec kI8042[] = {{"error_count", C},        {"missed_read_count", C},
                              {"missed_write_count", C}, {"read_count", C},
                              {"reset_count", C},        {"write_count", C}};
constexpr KeySpec kUart[] = {{"error_count", C},
                             {"flush_count", C},
                             {"missed_read_count", C},
                             {"missed_write_count", C},
                             {"read_count", C},
                             {"write_count", C},
                             {"rate_limiter_dropped_bytes", C}};
constexpr KeySpec kLatencies[] = {{"full_create_snapshot", S},
                                  {"diff_create_snapshot", S},
                                  {"load_snapshot", S},
                                  {"pause_vm", S},
                                  {"resume_vm", S},
                                  {"vmm_full_create_snapshot", S},
                                  {"vmm_diff_create_snapshot", S},
                                  {"vmm_load_snapshot", S},
                                  {"vmm_pause_vm", S},
                                  {"vmm_resume_vm", S}};
constexpr KeySpec kLogger[] = {{"missed_metrics_count", C},
                               {"metrics_fails", C},
                               {"missed_log_count", C},
                               {"rate_limited_log_count", C}};
constexpr KeySpec kMmds[] = {{"rx_accepted", C},
                             {"rx_accepted_err", C},
                             {"rx_accepted_unusual", C},
                             {"rx_bad_eth", C},
                             {"rx_invalid_token", C},
                             {"rx_no_token", C},
                             {"rx_count", C},
                             {"tx_bytes", C},
                             {"tx_count", C},
                             {"tx_errors", C},
                             {"tx_frames", C},
                             {"connections_created", C},
                             {"connections_destroyed", C}};
constexpr KeySpec kNet[] = {{"activate_fails", C},
                            {"cfg_fails", C},
                            {"no_rx_avail_buffer", C},
                            {"no_tx_avail_buffer", C},
                            {"event_fails", C},
                            {"rx_queue_event_count", C},
                            {"rx_event_rate_limiter_count", C},
                            {"rx_rate_limiter_throttled", C},
                            {"rx_tap_event_count", C},
                            {"rx_bytes_count", C},
                            {"rx_packets_count", C},
                            {"rx_fails", C},
                            {"rx_count", C},
                            {"tap_read_fails", C},
                            {"tap_write_fails", C},
                            AGG("tap_write_agg"),
                            {"tx_bytes_count", C},
                            {"tx_malformed_frames", C},
                            {"tx_fails", C},
                            {"tx_count", C},
                            {"tx_packets_count", C},
                            {"tx_queue_event_count", C},
                            {"tx_rate_limiter_event_count", C},
                            {"tx_rate_limiter_throttled", C},
                            {"tx_spoofed_mac_count", C},
                            {"tx_remaining_reqs_count", C}};
constexpr KeySpec kPatchApiRequests[] = {
    {"drive_count", C},          {"drive_fails", C},       {"network_count", C},
    {"network_fails", C},        {"machine_cfg_count", C}, {"machine_cfg_fails", C},
    {"mmds_count", C},           {"mmds_fails", C},        {"hotplug_memory_count", C},
    {"hotplug_memory_fails", C}, {"pmem_count", C},        {"pmem_fails", C}};
constexpr KeySpec kPutApiRequests[] = {
    {"actions_count", C},        {"actions_fails", C},       {"boot_source_count", C},
    {"boot_source_fails", C},    {"drive_count", C},         {"drive_fails", C},
    {"logger_count", C},         {"logger_fails", C},        {"machine_cfg_count", C},
    {"machine_cfg_fails", C},    {"cpu_cfg_count", C},       {"cpu_cfg_fails", C},
    {"metrics_count", C},        {"metrics_fails", C},       {"network_count", C},
    {"network_fails", C},        {"mmds_count", C},          {"mmds_fails", C},
    {"vsock_count", C},          {"vsock_fails", C},         {"pmem_count", C},
    {"pmem_fails", C},           {"serial_count", C},        {"serial_fails", C},
    {"hotplug_memory_count", C}, {"hotplug_memory_fails", C}};
constexpr KeySpec kSeccomp[] = {{"num_faults", S}};
constexpr KeySpec kVcpu[] = {{"exit_io_in", C},         {"exit_io_out", C},
                             {"exit_mmio_read", C},     {"exit_mmio_write", C},
                             {"failures", C},           {"kvmclock_ctrl_fails", C},
                             AGG("exit_io_in_agg"),     AGG("exit_io_out_agg"),
                             AGG("exit_mmio_read_agg"), AGG("exit_mmio_write_agg")};
constexpr KeySpec kVmm[] = {{"panic_count", S}};
constexpr KeySpec kSignals[] = {{"sigbus", S},  {"sigsegv", S}, {"sigxfsz", S}, {"sigxcpu", S},
                                {"sigpipe", C}, {"sighup", S},  {"sigill", S}};
constexpr KeySpec kVsock[] = {{"activate_fails", C},       {"cfg_fails", C},
                              {"rx_queue_event_fails", C}, {"tx_queue_event_fails", C},
                              {"ev_queue_event_fails", C}, {"muxer_event_fails", C},
                              {"conn_event_fails", C},     {"rx_queue_event_count", C},
                              {"tx_queue_event_count", C}, {"rx_bytes_count", C},
                              {"tx_bytes_count", C},       {"rx_packets_count", C},
                              {"tx_packets_count", C},     {"conns_added", C},
                              {"conns_killed", C},         {"conns_removed", C},
                              {"killq_resync", C},         {"tx_flush_fails", C},
                              {"tx_write_fails", C},       {"rx_read_fails", C}};
constexpr KeySpec kEntropy[] = {
    {"activate_fails", C},          {"entropy_event_fails", C},
    {"entropy_event_count", C},     {"entropy_bytes", C},
    {"host_rng_fails", C},          {"entropy_rate_limiter_throttled", C},
    {"rate_limiter_event_count", C}};
constexpr KeySpec kPmem[] = {{"activate_fails", C},
                             {"cfg_fails", C},
                             {"event_fails", C},
                             {"queue_event_count", C},
                             {"rate_limiter_throttled_events", C},
                             {"rate_limiter_event_count", C}};
constexpr KeySpec kVhostUser[] = {{"activate_fails", C},
                                  {"cfg_fails", C},
                                  {"init_time_us", S},
                                  {"activate_time_us", S},
                                  {"config_change_time_us", S}};
constexpr KeySpec kInterrupts[] = {{"triggers", C}, {"config_updates", C}};
constexpr KeySpec kMemoryHotplug[] = {
    {"activate_fails", C},   {"queue_event_fails", C},    {"queue_event_count", C},
    {"plug_count", C},       {"plug_bytes", C},           {"plug_fails", C},
    AGG("plug_agg"),         {"unplug_count", C},         {"unplug_bytes", C},
    {"unplug_fails", C},     {"unplug_discard_fails", C}, AGG("unplug_agg"),
    {"state_count", C},      {"state_fails", C},          AGG("state_agg"),
    {"unplug_all_count", C}, {"unplug_all_fails", C},     AGG("unplug_all_agg")};
#undef AGG

struct GroupSpec {
  const char* name;
  const KeySpec* keys;
  size_t count;
};

template <size_t N>
constexpr GroupSpec group(const char* name, const KeySpec (&keys)[N]) {
  return {name, keys, N};
}

constexpr GroupSpec kSchema[] = {
    group("api_server", kApiServer),
    group("balloon", kBalloon),
    group("block", kBlock),
    group("deprecated_api", kDeprecatedApi),
    group("get_api_requests", kGetApiRequests),
    group("i8042", kI8042),
    group("uart", kUart),
    group("latencies_us", kLatencies),
    group("logger", kLogger),
    group("mmds", kMmds),
    group("net", kNet),
    group("patch_api_requests", kPatchApiRequests),
    group("put_api_requests", kPutApiRequests),
    group("seccomp", kSeccomp),
    group("vcpu", kVcpu),
    group("vmm", kVmm),
    group("signals", kSignals),
    group("vsock", kVsock),
    group("entropy", kEntropy),
    group("pmem", kPmem),
    group("interrupts", kInterrupts),
    group("memory_hotplug", kMemoryHotplug),
};

const GroupSpec* find_spec(std::string_view name) {
  for (const auto& g : kSchema)
    if (name == g.name) return &g;
  return nullptr;
}

// Per-device groups take the key set of their family, and are written just
// before the family's aggregate group as Firecracker does (block_x, block).
const GroupSpec* family_of(std::string_view name, std::string_view* anchor) {
  if (name.rfind("block_", 0) == 0) {
    *anchor = "block";
    return find_spec("block");
  }
  if (name.rfind("net_", 0) == 0) {
    *anchor = "net";
    return find_spec("net");
  }
  if (name.rfind("vhost_user_", 0) == 0) {
    static constexpr GroupSpec kVhost = group("vhost_user", kVhostUser);
    *anchor = "interrupts";
    return &kVhost;
  }
  return nullptr;
}


}  // namespace

Metrics::Metrics(std::string instance_id) : instance_id_(std::move(instance_id)) {}
Metrics::~Metrics() = default;

void Metrics::ensure_schema_locked() {
  if (schema_ready_) return;
  schema_ready_ = true;
  // Built on first use rather than at construction: process startup to API
  // readiness stays free of ~300 allocations it does not need.
  groups_.reserve(std::size(kSchema) + 4);
  for (const auto& spec : kSchema) {
    auto g = std::make_unique<Group>();
    g->name = spec.name;
    g->entries.reserve(spec.count);
    for (size_t i = 0; i < spec.count; ++i)
      g->entries.push_back(
          Entry{spec.keys[i].name, spec.keys[i].kind, std::make_unique<Counter>(), 0});
    groups_.push_back(std::move(g));
  }
}

Metrics::Group& Metrics::group_locked(const std::string& name) {
  ensure_schema_locked();
  for (auto& g : groups_)
    if (g->name == name) return *g;
  auto g = std::make_unique<Group>();
  g->name = name;
  std::string_view anchor;
  auto position = groups_.end();
  if (const GroupSpec* family = family_of(name, &anchor)) {
    for (size_t i = 0; i < family->count; ++i)
      g->entries.push_back(
          Entry{family->keys[i].name, family->keys[i].kind, std::make_unique<Counter>(), 0});
    for (auto it = groups_.begin(); it != groups_.end(); ++it) {
      if ((*it)->name == anchor) {
        position = it;
        break;
      }
    }
  }
  return **groups_.insert(position, std::move(g));
}

Counter& Metrics::counter(const std::string& group, const std::string& name, Kind kind) {
  std::lock_guard lock(mutex_);
  Group& g = group_locked(group);
  for (auto& e : g.entries)
    if (e.name == name) return *e.counter;
  g.entries.push_back(Entry{name, kind, std::make_unique<Counter>(), 0});
  return *g.entries.back().counter;
}

void Metrics::configure(const MetricsConfig& config) {
  std::lock_guard lock(mutex_);
  if (config_) throw common::Error("Reinitialization of metrics not allowed.");
  // Same open mode as the log (FIFO friendly, never truncates).
  common::UniqueFd fd(
      ::open(config.metrics_path.c_str(), O_RDWR | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0644));
  if (!fd) common::throw_errno("open metrics file " + config.metrics_path);
  fd_ = std::move(fd);
  config_ = config;
}

bool Metrics::configured() const {
  std::lock_guard lock(mutex_);
  return config_.has_value();
}

void Metrics::set_instance_id(std::string id) {
  std::lock_guard lock(mutex_);
  instance_id_ = std::move(id);
}

void Metrics::serialize_group_locked(Group& group, std::string& out) {
  common::append_json_string(out, group.name);
  out += ":{";
  bool first = true;
  std::vector<bool> done(group.entries.size(), false);
  auto value_of = [](Entry& e) {
    uint64_t v = e.counter->load();
    if (e.kind == Kind::kStore) return v;
    uint64_t delta = v - e.last_flushed;
    e.last_flushed = v;
    return delta;
  };
  for (size_t i = 0; i < group.entries.size(); ++i) {
    if (done[i]) continue;
    Entry& e = group.entries[i];
    if (!first) out += ',';
    first = false;
    size_t dot = e.name.find('.');
    if (dot == std::string::npos) {
      common::append_json_string(out, e.name);
      out += ':';
      out += std::to_string(value_of(e));
      continue;
    }
    // A nested object: all keys sharing this prefix, in registration order.
    std::string_view prefix(e.name.data(), dot);
    common::append_json_string(out, prefix);
    out += ":{";
    bool inner_first = true;
    for (size_t j = i; j < group.entries.size(); ++j) {
      Entry& f = group.entries[j];
      if (done[j] || f.name.size() <= dot ||
          std::string_view(f.name).substr(0, dot + 1) != e.name.substr(0, dot + 1))
        continue;
      done[j] = true;
      if (!inner_first) out += ',';
      inner_first = false;
      common::append_json_string(out, std::string_view(f.name).substr(dot + 1));
      out += ':';
      out += std::to_string(value_of(f));
    }
    out += '}';
  }
  out += '}';
}

std::string Metrics::serialize() {
  std::lock_guard lock(mutex_);
  ensure_schema_locked();
  std::string out;
  out.reserve(8192);
  auto now = std::chrono::system_clock::now().time_since_epoch();
  out += "{\"utc_timestamp_ms\":";
  out += std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(now).count());
  if (config_ && config_->emit_id) {
    out += ",\"id\":";
    common::append_json_string(out, instance_id_);
  }
  if (config_ && !config_->properties.empty()) {
    out += ",\"properties\":{";
    bool first = true;
    for (const auto& [k, v] : config_->properties) {  // std::map: sorted, as Firecracker's BTreeMap
      if (!first) out += ',';
      first = false;
      common::append_json_string(out, k);
      out += ':';
      common::append_json_string(out, v);
    }
    out += '}';
  }
  for (auto& g : groups_) {
    out += ',';
    serialize_group_locked(*g, out);
  }
  out += '}';
  return out;
}

bool Metrics::flush() {
  if (!configured()) return false;
  std::string line = serialize();
  line += '\n';
  std::unique_lock lock(mutex_);
  ssize_t written;
  do {
    written = ::write(fd_.get(), line.data(), line.size());
  } while (written < 0 && errno == EINTR);
  lock.unlock();
  if (written != static_cast<ssize_t>(line.size())) {
    counter("logger", "missed_metrics_count").inc();
    return false;
  }
  return true;
}

}  // namespace ember::vmm
