// Configuration objects that only the control plane needs, beside the
// machine's structs in vmm_config.h: partial updates, request enums, the
// `--config-file` document and the GET responses. Plain data; no JSON, no HTTP.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "vmm/logger/logger.h"
#include "vmm/vmm_config/vmm_config.h"

namespace ember::vmm {

// PUT/PATCH /machine-config: a field left out keeps its value.
struct MachineConfigUpdate {
  std::optional<uint32_t> vcpu_count;
  std::optional<uint64_t> mem_size_mib;
  std::optional<bool> smt;
  std::optional<CpuTemplate> cpu_template;
  std::optional<bool> track_dirty_pages;
  std::optional<HugePages> huge_pages;

  bool empty() const {
    return !vcpu_count && !mem_size_mib && !smt && !cpu_template && !track_dirty_pages &&
           !huge_pages;
  }
};

// PUT /actions.
enum class ActionType { kFlushMetrics, kInstanceStart, kSendCtrlAltDel };

// PATCH /vm.
enum class VmStateRequest { kPaused, kResumed };

// PUT /vsock: the body, plus whether the deprecated `vsock_id` was used.
struct VsockRequest {
  VsockConfig config;
  bool deprecated_vsock_id = false;
};

// `cpu-config` in a config file: an inline template or a path to one.
using CpuConfigSource = std::variant<CustomCpuTemplate, std::string>;

// The `--config-file` document (Firecracker's VmmConfig, kebab-case keys).
// Sections ember does not implement are recorded as present so the loader can
// refuse them by name.
struct VmmConfigFile {
  std::optional<LoggerUpdate> logger;
  std::optional<MetricsConfig> metrics;
  std::optional<MachineConfigUpdate> machine_config;
  std::optional<CpuConfigSource> cpu_config;
  BootSourceConfig boot_source;
  std::vector<DriveConfig> drives;
  std::vector<NetworkInterfaceConfig> network_interfaces;
  std::optional<VsockConfig> vsock;
  std::optional<EntropyConfig> entropy;
  bool has_balloon = false;
  bool has_mmds_config = false;
  bool has_pmem = false;
  bool has_memory_hotplug = false;
};

// GET /.
struct InstanceInfo {
  std::string id;
  std::string state;  // "Not started", "Running", "Paused"
  std::string vmm_version;
  std::string app_name = "Firecracker";
};

}  // namespace ember::vmm
