// The VMM thread's side of the API (Firecracker's PrebootApiController and
// RuntimeApiController in one): before InstanceStart it validates and stores
// configuration in VmResources; InstanceStart hands them to Vmm::start();
// afterwards it forwards the runtime operations to the Vmm. Phase rules and
// error texts follow rpc_interface.rs (reference/firecracker-compat.md §1.2).
//
// Configuration of devices ember's machine may not build yet (net, entropy,
// vhost-user drives, ...) is validated and stored all the same; if the
// machine refuses it at InstanceStart, the error carries its message.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "vmm/api/vmm_action.h"
#include "vmm/common/error.h"
#include "vmm/logger/logger.h"
#include "vmm/logger/metrics.h"
#include "vmm/vmm.h"
#include "vmm/vmm_config/api_config.h"

namespace ember::vmm::api {

// A configuration error: `message` without the context prefix, which differs
// between the API ("Drive config error: ...") and a config file ("Block
// device error: ...") exactly as upstream's error types do.
class ConfigError : public common::Error {
 public:
  enum class Area {
    kBootSource,
    kMachineConfig,
    kCpuConfig,
    kDrive,
    kNetwork,
    kVsock,
    kEntropy,
    kLogger,
    kMetrics
  };
  ConfigError(Area area, std::string message);
  Area area() const { return area_; }
  const std::string& detail() const { return detail_; }
  // "Drive config error: <detail>" (VmmActionError's Display).
  std::string api_message() const;
  // "Block device error: <detail>" (ResourcesError's Display).
  std::string config_file_message() const;

 private:
  Area area_;
  std::string detail_;
};

using VmmStarter = std::function<std::unique_ptr<Vmm>(const VmResources&, Logger&, Metrics&)>;

struct ControllerOptions {
  std::string instance_id = "anonymous-instance";
  std::string version;      // GET /version and GET /
  bool boot_timer = false;  // --boot-timer
  VmmStarter start_vmm;     // Vmm::start in ember-vmm
  // Called on the VMM thread right after a successful start (metrics flush,
  // timer arming, exit notification wiring).
  std::function<void(Vmm&)> on_started;
};

class Controller {
 public:
  Controller(ControllerOptions options, Logger& logger, Metrics& metrics);

  // One API action, pre- or post-boot. Never throws.
  VmmResponse handle(const VmmAction& action);

  // `--config-file`, applied in upstream's order (logger, metrics,
  // machine-config, cpu-config, boot-source, drives, network, vsock, entropy).
  // Throws ConfigError, or common::Error for a section ember does not support.
  void apply_config_file(const VmmConfigFile& file);
  // InstanceStart. Throws common::Error with the machine's message.
  void start_microvm();

  bool started() const { return vmm_ != nullptr; }
  Vmm* vmm() { return vmm_.get(); }
  const VmResources& resources() const { return resources_; }

  // The validating setters, shared by the API and the config file.
  void set_boot_source(const BootSourceConfig& config);
  void update_machine_config(const MachineConfigUpdate& update);
  void set_cpu_config(const CustomCpuTemplate& config);
  void insert_drive(const DriveConfig& config);
  void insert_network_interface(const NetworkInterfaceConfig& config);
  void set_vsock(const VsockConfig& config);
  void set_entropy(const EntropyConfig& config);
  void configure_logger(const LoggerUpdate& update);
  void configure_metrics(const MetricsConfig& config);

 private:
  VmmResponse handle_preboot(const VmmAction& action);
  VmmResponse handle_runtime(const VmmAction& action);
  InstanceInfo instance_info() const;

  ControllerOptions options_;
  Logger& logger_;
  Metrics& metrics_;
  VmResources resources_;
  std::unique_ptr<Vmm> vmm_;
};

}  // namespace ember::vmm::api
