// What the API thread hands the VMM thread (Firecracker's VmmAction) and what
// comes back (VmmData or an error). Plain config structs only: the API thread
// parses JSON into these and serialises the answers.
#pragma once

#include <optional>
#include <string>
#include <variant>

#include "vmm/vmm_config/api_config.h"
#include "vmm/vmm_config/vmm_config.h"

namespace ember::vmm::api {

namespace action {
struct GetInstanceInfo {};
struct GetVersion {};
struct GetMachineConfig {};
struct GetFullConfig {};
struct StartMicroVm {};
struct FlushMetrics {};
struct SendCtrlAltDel {};
struct Pause {};
struct Resume {};
struct ConfigureBootSource {
  BootSourceConfig config;
};
struct UpdateMachineConfig {
  MachineConfigUpdate update;
};
struct PutCpuConfig {
  CustomCpuTemplate config;
};
struct InsertDrive {
  DriveConfig config;
};
struct UpdateDrive {
  DriveUpdate update;
};
struct InsertNetworkInterface {
  NetworkInterfaceConfig config;
};
struct UpdateNetworkInterface {
  NetworkInterfaceUpdate update;
};
struct SetVsock {
  VsockConfig config;
};
struct SetEntropy {
  EntropyConfig config;
};
struct ConfigureLogger {
  LoggerUpdate update;
};
struct ConfigureMetrics {
  MetricsConfig config;
};
}  // namespace action

using VmmAction =
    std::variant<action::GetInstanceInfo, action::GetVersion, action::GetMachineConfig,
                 action::GetFullConfig, action::StartMicroVm, action::FlushMetrics,
                 action::SendCtrlAltDel, action::Pause, action::Resume, action::ConfigureBootSource,
                 action::UpdateMachineConfig, action::PutCpuConfig, action::InsertDrive,
                 action::UpdateDrive, action::InsertNetworkInterface,
                 action::UpdateNetworkInterface, action::SetVsock, action::SetEntropy,
                 action::ConfigureLogger, action::ConfigureMetrics>;

// The answer: data for the GETs, nothing (204), or an error message that
// becomes {"fault_message": ...} with `status`.
struct VmmResponse {
  struct Error {
    std::string message;
    int status = 400;
  };
  std::variant<std::monostate, MachineConfig, InstanceInfo, VmResources, std::string /* version */,
               Error>
      data;

  static VmmResponse empty() { return {}; }
  static VmmResponse error(std::string message, int status = 400) {
    return VmmResponse{Error{std::move(message), status}};
  }
  bool ok() const { return !std::holds_alternative<Error>(data); }
};

// Firecracker's phase rejections (rpc_interface.rs).
inline constexpr const char* kNotSupportedPreBoot =
    "The requested operation is not supported before starting the microVM.";
inline constexpr const char* kNotSupportedPostBoot =
    "The requested operation is not supported after starting the microVM.";

}  // namespace ember::vmm::api
