// The `qemu` backend: QEMU's `microvm` machine runs the guest (KVM where it
// can run Linux, TCG elsewhere), and ember's own virtio devices are served to
// it over vhost-user from this process (vmm/vhost_user): one
// vhost-user-blk per drive slot and a vhost-user-vsock whose host side is the
// hybrid unix socket. Guest RAM is a shared memfd so the backends can map it.
// Every QEMU channel (vhost-user, QMP) is one end of a socketpair passed as
// an fd, so no socket file is left behind; the hybrid vsock socket lives in
// the VM's directory.
//
// QEMU is spawned by a watcher thread that lives exactly as long as QEMU:
// PR_SET_PDEATHSIG ties QEMU to that thread, so a shim killed with SIGKILL
// takes its VM with it (and `delete` kills it by pid as a second line).
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "shim/hypervisor/hypervisor.h"
#include "shim/hypervisor/qmp_client.h"

namespace ember::vmm {
class Logger;
class Metrics;
namespace vhost_user {
class VhostUserBackend;
}
}  // namespace ember::vmm

namespace ember::shim {

class QemuHypervisor : public Hypervisor {
 public:
  explicit QemuHypervisor(ShimLog& log);
  ~QemuHypervisor() override;  // stop()

  void start(const VmSpec& spec) override;
  std::string vsock_uds_path() const override { return vsock_uds_; }
  void pause() override;
  void resume() override;
  void update_drive(const std::string& drive_id, const std::string& path) override;
  void stop() override;
  void on_exit(std::function<void(const VmExitInfo&)> callback) override { on_exit_ = std::move(callback); }
  pid_t vmm_pid() const override { return pid_.load(); }
  pid_t external_pid() const override { return pid_.load(); }
  std::string diagnostics() const override;
  std::string backend_name() const override { return "qemu"; }

  // QEMU's argv for `spec` with the vhost-user and QMP channels on fds
  // `first_fd`, `first_fd + 1`, ... (drives, then vsock, then QMP). Exposed
  // for tests.
  static std::vector<std::string> build_argv(const VmSpec& spec, int first_fd, const std::string& console_log);

 private:
  void watch(std::vector<std::string> argv, std::vector<std::pair<int, int>> fds);
  void stop_backends();

  ShimLog& log_;
  std::unique_ptr<vmm::Logger> vmm_logger_;
  std::unique_ptr<vmm::Metrics> vmm_metrics_;
  std::vector<std::unique_ptr<vmm::vhost_user::VhostUserBackend>> backends_;
  std::vector<std::string> drive_ids_;  // parallel to the first backends_
  std::unique_ptr<QmpClient> qmp_;
  std::function<void(const VmExitInfo&)> on_exit_;
  std::string vsock_uds_;
  std::string console_log_;
  std::string qemu_log_;

  std::atomic<pid_t> pid_{0};
  std::mutex mutex_;
  std::condition_variable changed_;
  bool spawned_ = false;        // the watcher tried to spawn
  std::string spawn_error_;
  bool exited_ = false;
  bool stop_requested_ = false;
  std::thread watcher_;
};

}  // namespace ember::shim
