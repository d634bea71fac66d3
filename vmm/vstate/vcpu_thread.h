// The thread running one vCPU ("fc_vcpu N"): KVM_RUN, exits dispatched to
// the port-I/O and MMIO buses, and pause/resume/stop through a real-time
// signal kick (SIGRTMIN) plus kvm_run.immediate_exit, so a kick never races
// with entering KVM_RUN.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "vmm/devices/bus.h"
#include "vmm/logger/logger.h"
#include "vmm/logger/metrics.h"
#include "vmm/vmm.h"
#include "vmm/vstate/exit_latch.h"
#include "vmm/vstate/vcpu.h"

namespace ember::vmm {

class VcpuThread {
 public:
  VcpuThread(std::unique_ptr<Vcpu> vcpu, const Bus& pio, const Bus& mmio, ExitLatch& exits, Logger& logger,
             Metrics& metrics);
  VcpuThread(const VcpuThread&) = delete;
  VcpuThread& operator=(const VcpuThread&) = delete;
  ~VcpuThread();  // stops and joins

  Vcpu& vcpu() { return *vcpu_; }

  // Starts the thread; it runs the vCPU until paused or stopped, or until
  // the guest does something that ends the VM (reported to the ExitLatch).
  void start();
  // Kicks the vCPU out of KVM_RUN and waits until it is parked (or ended).
  void pause();
  void resume();
  // Asks the thread to end; does not wait. join() waits (once; later calls
  // and calls from other threads return at once).
  void stop();
  void join();

 private:
  enum class Command { kRun, kPause, kStop };
  void main_loop();
  void kick();
  // What a VM exit means: nothing (keep running) or the end of the VM.
  std::optional<VmExit> handle_exit();
  std::optional<VmExit> handle_internal_error(const kvm_run& run);

  std::unique_ptr<Vcpu> vcpu_;
  const Bus& pio_;
  const Bus& mmio_;
  ExitLatch& exits_;
  Logger& logger_;
  Counter& exit_io_in_;
  Counter& exit_io_out_;
  Counter& exit_mmio_read_;
  Counter& exit_mmio_write_;
  Counter& failures_;

  std::mutex mutex_;
  std::condition_variable cv_;
  Command command_ = Command::kRun;
  bool parked_ = false;
  bool finished_ = false;
  bool started_ = false;
  bool joining_ = false;  // join() began: no more kicks
  std::thread thread_;
};

// Installs the (empty) SIGRTMIN handler that interrupts KVM_RUN. Idempotent.
void install_vcpu_kick_handler();

}  // namespace ember::vmm
