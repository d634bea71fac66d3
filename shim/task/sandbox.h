// The pod's microVM as the TaskService sees it: a Hypervisor, the drive
// slots, and the agent connection.
//
// virtio-mmio has no hot-plug, so the VM boots with the first container's
// root disk in slot 0 and `spare_drive_slots` more slots backed by small
// placeholder files. A later container of the pod gets a free slot: its
// backing file is swapped (Hypervisor::update_drive, a config-change
// interrupt for the guest) and the agent is told (BlockDeviceChanged) so it
// waits for the new capacity. A released slot goes back to its placeholder.
// The guest finds a disk by its virtio-blk serial (rootfs.h block_serial()).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "guest-agent/agent/client/agent_client.h"
#include "shim/hypervisor/hypervisor.h"
#include "shim/log/shim_log.h"
#include "shim/rootfs/rootfs.h"

namespace ember::shim {

inline constexpr uint32_t kAgentVsockPort = 1024;

struct SandboxOptions {
  std::string name;    // the group id
  VmSpec vm;           // kernel, sizes, vm_dir, ...; drives are filled in by boot()
  uint32_t spare_slots = 3;
  std::chrono::milliseconds boot_timeout{60000};
};

class Sandbox {
 public:
  using ExitCallback = std::function<void(const VmExitInfo&)>;
  using OomCallback = std::function<void(const std::string& container_id)>;

  Sandbox(SandboxOptions options, std::unique_ptr<Hypervisor> hypervisor, ShimLog& log);
  ~Sandbox();  // stop()
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;

  // Starts the VM with `first` in slot 0 and waits until the agent answers.
  // `on_exit` runs once when the VM ends (on a backend thread; must not call
  // stop()); `on_oom` for every OOM event of the guest. Throws common::Error
  // with the guest console's tail when the VM does not come up. Returns the slot.
  size_t boot(const RootfsDisk& first, ExitCallback on_exit, OomCallback on_oom);

  // Gives `disk` a free slot; throws common::Error when none is left.
  size_t attach(const RootfsDisk& disk);
  // Puts the slot's placeholder back. Never throws (logs).
  void release(size_t slot);

  // The agent connection; throws ttrpc::StatusError(UNAVAILABLE) when the VM
  // is gone. A connection that broke while the VM lives (a vhost-user vsock
  // backend drops its connections when QEMU stops the VM's rings, e.g. for
  // pause) is re-dialed here; callers keep the returned client for the call.
  std::shared_ptr<agent::AgentClient> agent();
  common::UniqueFd open_stream(const std::string& container_id, const std::string& exec_id, agent::StreamKind kind);

  bool alive() const { return booted_.load() && !exited_.load(); }
  std::optional<VmExitInfo> exit_info() const;
  void pause();
  void resume();
  // Ends the VM (asks the agent to power off first when `graceful`) and
  // waits for it. Idempotent.
  void stop();

  pid_t vmm_pid() const { return hypervisor_->vmm_pid(); }
  pid_t external_pid() const { return hypervisor_->external_pid(); }
  const std::string& vm_dir() const { return options_.vm.vm_dir; }
  std::string backend_name() const { return hypervisor_->backend_name(); }
  std::string diagnostics() const { return hypervisor_->diagnostics(); }

 private:
  struct Slot {
    std::string id;
    std::string placeholder;
    bool used = false;
  };
  void wait_for_agent();
  void event_loop();

  SandboxOptions options_;
  std::unique_ptr<Hypervisor> hypervisor_;
  ShimLog& log_;
  std::mutex mutex_;  // slots_, exit_
  std::vector<Slot> slots_;
  std::shared_ptr<agent::AgentClient> agent_;  // guarded by mutex_
  std::mutex redial_mutex_;
  ExitCallback on_exit_;
  OomCallback on_oom_;
  std::atomic<bool> booted_{false};
  std::atomic<bool> exited_{false};
  std::atomic<bool> stopping_{false};
  std::optional<VmExitInfo> exit_;
  std::thread events_;
};

}  // namespace ember::shim
