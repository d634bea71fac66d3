// The `ember` backend: ember's own VMM core (vmm/vmm.h) in this process, one
// thread per vCPU plus its device thread. Drive slots are virtio-blk devices,
// the agent channel is the virtio-vsock device's hybrid unix socket, and a
// drive swap is Vmm::update_drive (Firecracker's PATCH /drives). The VM dies
// with the shim, so there is no pid for `delete` to kill.
//
// Needs a KVM that runs Linux guests (ember-kvm-check); the "auto" backend
// picks it only then.
#pragma once

#include <memory>
#include <mutex>

#include "shim/hypervisor/hypervisor.h"

namespace ember::vmm {
class Logger;
class Metrics;
class Vmm;
struct VmResources;
}  // namespace ember::vmm

namespace ember::shim {

class EmberHypervisor : public Hypervisor {
 public:
  explicit EmberHypervisor(ShimLog& log);
  ~EmberHypervisor() override;  // stop()

  void start(const VmSpec& spec) override;
  std::string vsock_uds_path() const override { return vsock_uds_; }
  void pause() override;
  void resume() override;
  void update_drive(const std::string& drive_id, const std::string& path) override;
  void stop() override;
  void on_exit(std::function<void(const VmExitInfo&)> callback) override { on_exit_ = std::move(callback); }
  pid_t vmm_pid() const override;
  pid_t external_pid() const override { return 0; }
  std::string diagnostics() const override;
  std::string backend_name() const override { return "ember"; }

  // The VMM configuration for `spec` (exposed for tests).
  static vmm::VmResources build_resources(const VmSpec& spec, const std::string& console_log,
                                          const std::string& vsock_uds);

 private:
  ShimLog& log_;
  std::unique_ptr<vmm::Logger> vmm_logger_;
  std::unique_ptr<vmm::Metrics> vmm_metrics_;
  std::unique_ptr<vmm::Vmm> vm_;
  std::function<void(const VmExitInfo&)> on_exit_;
  std::mutex mutex_;
  bool stop_requested_ = false;
  std::string vsock_uds_;
  std::string console_log_;
  std::string vmm_log_;
};

}  // namespace ember::shim
