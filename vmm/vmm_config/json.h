// JSON <-> configuration objects, with Firecracker's field names, defaults,
// `deny_unknown_fields` rules and serde's error texts
// (reference/firecracker-compat.md §1.3, §1.5). Parsers throw json::JsonError;
// its what() is serde's message with " at line L column C".
#pragma once

#include <string>
#include <string_view>

#include "vmm/vmm_config/api_config.h"
#include "vmm/vmm_config/json_reader.h"
#include "vmm/vmm_config/vmm_config.h"

namespace ember::vmm::json {

// API bodies.
ActionType parse_action(std::string_view body);
BootSourceConfig parse_boot_source(std::string_view body);
// PUT: vcpu_count and mem_size_mib required, the others reset to defaults.
MachineConfigUpdate parse_machine_config_put(std::string_view body);
// PATCH: every field optional.
MachineConfigUpdate parse_machine_config_patch(std::string_view body);
CustomCpuTemplate parse_cpu_config(std::string_view body);
DriveConfig parse_drive(std::string_view body);
DriveUpdate parse_drive_update(std::string_view body);
NetworkInterfaceConfig parse_network_interface(std::string_view body);
NetworkInterfaceUpdate parse_network_interface_update(std::string_view body);
VsockRequest parse_vsock(std::string_view body);
EntropyConfig parse_entropy(std::string_view body);
LoggerUpdate parse_logger(std::string_view body);
MetricsConfig parse_metrics(std::string_view body);
VmStateRequest parse_vm_state(std::string_view body);
// `--config-file`.
VmmConfigFile parse_config_file(std::string_view text);

// Responses, as serde_json writes them (compact, struct field order).
std::string to_json(const MachineConfig& config);
std::string to_json(const InstanceInfo& info);
std::string version_json(std::string_view version);
// GET /vm/config: Firecracker's FullVmConfiguration, every key present.
std::string full_config_json(const VmResources& resources);
// {"fault_message":"..."}
std::string fault_message_json(std::string_view message);

// A rate limiter as Firecracker reports it: disabled buckets (size or
// refill_time 0) dropped, one_time_burst 0 dropped, nullopt when nothing is left.
std::optional<RateLimiterConfig> effective_rate_limiter(
    const std::optional<RateLimiterConfig>& limiter);

}  // namespace ember::vmm::json
