// libember-vmm's embedding API: what the shim (in-process backend) and the
// ember-vmm binary's API layer use to run a microVM. No HTTP, no JSON.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "vmm/logger/logger.h"
#include "vmm/logger/metrics.h"
#include "vmm/vmm_config/vmm_config.h"

namespace ember::vmm {

enum class VmState { kNotStarted, kRunning, kPaused, kExited };

// Why and how the VM ended. `exit_code` follows Firecracker's process exit
// codes: 0 guest reset/shutdown or stop request, 1 vCPU error (triple fault,
// KVM internal error, ...).
struct VmExit {
  int exit_code = 0;
  std::string reason;  // e.g. "guest reset through i8042", "vcpu 0: triple fault (KVM_EXIT_SHUTDOWN)"
};

class Vmm {
 public:
  virtual ~Vmm() = default;

  // Builds the VM described by `resources` and starts its vCPUs. Throws
  // common::Error naming what failed (missing kernel, bad drive path, a
  // device that is not available, KVM errors). Logger and metrics must
  // outlive the Vmm.
  static std::unique_ptr<Vmm> start(const VmResources& resources, Logger& logger, Metrics& metrics);

  virtual VmState state() const = 0;
  virtual void pause() = 0;
  virtual void resume() = 0;
  virtual void send_ctrl_alt_del() = 0;
  // Asks the VM to stop; vCPUs are kicked and the VM exits with `exit_code`.
  virtual void stop(int exit_code = 0) = 0;

  // Blocks until the VM has exited and all its threads are joined.
  virtual VmExit wait() = 0;
  virtual std::optional<VmExit> try_wait() = 0;
  // Called once, from a VMM thread, when the VM exits; must not block or call wait().
  virtual void on_exit(std::function<void(const VmExit&)> callback) = 0;

  // Post-boot updates (PATCH /drives, PATCH /network-interfaces). Throw
  // common::Error naming the id and the problem.
  virtual void update_drive(const DriveUpdate& update) = 0;
  virtual void update_network_interface(const NetworkInterfaceUpdate& update) = 0;

  // The configuration the VM was built from (GET /vm/config after boot).
  virtual const VmResources& resources() const = 0;
};

}  // namespace ember::vmm
