// The VM behind a pod, whatever runs it. Two backends implement this:
//
// * `ember` (ember_hypervisor.h): the embedded VMM core, in this process,
//   through vmm/vmm.h. Needs a KVM that can run a Linux guest.
// * `qemu` (qemu_hypervisor.h): `qemu-system-x86_64 -M microvm` with ember's
//   own virtio devices (blk, vsock) served over vhost-user from this process
//   (vmm/vhost_user), KVM when it works, TCG otherwise.
//
// Both give the guest the same devices: one virtio-blk per drive slot
// (ember's BlockDevice, so the same serials) and a virtio-vsock whose host
// side is Firecracker's hybrid unix socket (`vsock_uds_path()`; connect,
// "CONNECT <port>\n", "OK <port>\n"), which is how the shim reaches the agent.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "shim/log/shim_log.h"

namespace ember::shim {

struct DriveSlot {
  std::string id;    // "slot0", ...
  std::string path;  // backing file or block device
  bool read_only = false;
};

struct VmSpec {
  std::string name;          // for logs: the group id
  std::string kernel;
  std::string initrd;        // empty: none
  std::string kernel_args;   // appended to the backend's base command line
  uint32_t vcpus = 1;
  uint32_t memory_mib = 256;
  std::vector<DriveSlot> drives;  // in guest order (vda, vdb, ...)
  std::string vm_dir;        // private directory for sockets and logs (exists)
  uint32_t guest_cid = 3;
  std::string console_log;   // guest serial console to this file ("" = vm_dir/console.log)
  // qemu backend
  std::string qemu_binary = "qemu-system-x86_64";
  std::string accel = "tcg";  // "kvm" or "tcg"
};

struct VmExitInfo {
  int code = 0;        // 0: clean guest shutdown or stop(); otherwise a failure
  std::string reason;  // "guest powered off", "qemu killed by signal 9", ...
};

class Hypervisor {
 public:
  virtual ~Hypervisor() = default;

  // Builds and starts the VM; returns once the VMM runs (the guest may still
  // be booting). Throws common::Error naming what failed. Call once.
  virtual void start(const VmSpec& spec) = 0;

  // The hybrid vsock socket that reaches the guest.
  virtual std::string vsock_uds_path() const = 0;

  virtual void pause() = 0;
  virtual void resume() = 0;

  // Swaps the file behind drive slot `drive_id` (Firecracker PATCH /drives):
  // the guest sees a config-change interrupt and the new capacity. Throws
  // common::Error naming the slot and the problem.
  virtual void update_drive(const std::string& drive_id, const std::string& path) = 0;

  // Ends the VM now (guest processes die with it) and waits until it is gone.
  // Idempotent; never throws.
  virtual void stop() = 0;

  // Called once, from a thread of the backend, when the VM ended for any
  // reason (also after stop()). Set before start().
  virtual void on_exit(std::function<void(const VmExitInfo&)> callback) = 0;

  // The host pid that represents the VM: QEMU's pid, or this process for the
  // in-process backend. containerd and CRI treat task pids as host pids.
  virtual pid_t vmm_pid() const = 0;
  // The pid to kill when the shim dies without cleaning up (`delete`
  // subcommand), or 0 when the VM lives and dies with the shim process.
  virtual pid_t external_pid() const = 0;

  // Text that helps explain a failure (the tail of the guest console).
  virtual std::string diagnostics() const = 0;

  virtual std::string backend_name() const = 0;
};

}  // namespace ember::shim
