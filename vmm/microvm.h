// The running microVM behind the Vmm interface: owns a built Machine, runs
// its device thread ("fc_vmm": the EventLoop with ioeventfds, device fds and
// the exit latch) and its vCPU threads, and tears everything down when the
// VM ends (guest reset, vCPU error, stop()).
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include "vmm/builder/machine.h"
#include "vmm/vmm.h"

namespace ember::vmm {

class MicroVm final : public Vmm {
 public:
  MicroVm(VmResources resources, Machine machine, Logger& logger, Metrics& metrics);
  ~MicroVm() override;

  // Starts the device thread and the vCPUs ("boot microvm").
  void start();

  VmState state() const override;
  void pause() override;
  void resume() override;
  void send_ctrl_alt_del() override;
  void stop(int exit_code = 0) override;
  VmExit wait() override;
  std::optional<VmExit> try_wait() override;
  void on_exit(std::function<void(const VmExit&)> callback) override;
  void update_drive(const DriveUpdate& update) override;
  void update_network_interface(const NetworkInterfaceUpdate& update) override;
  const VmResources& resources() const override { return resources_; }

  // For tests and tools.
  const Machine& machine() const { return machine_; }

 private:
  void device_thread_main();
  // Runs `task` on the device thread and waits for it (rethrowing its
  // exception); runs it on the caller when the device thread has ended.
  void run_on_device_thread(std::function<void()> task);
  VirtioSlot& find_slot(virtio::DeviceType type, const std::string& id, const char* what);

  VmResources resources_;
  Logger& logger_;
  Metrics& metrics_;
  Machine machine_;

  mutable std::mutex mutex_;
  std::condition_variable exited_cv_;
  VmState state_ = VmState::kNotStarted;
  std::optional<VmExit> exit_;
  std::function<void(const VmExit&)> on_exit_;
  std::mutex control_mutex_;  // serialises pause/resume
  std::atomic<bool> device_thread_done_{false};
  std::once_flag join_once_;
  std::thread device_thread_;
};

}  // namespace ember::vmm
