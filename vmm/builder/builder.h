// Turns a VmResources into a built microVM (reference/firecracker-compat.md
// §2): guest memory, KVM VM with irqchip and PIT, kernel/initrd/cmdline,
// legacy devices, virtio-mmio devices, boot structures, configured vCPUs.
// Nothing runs yet; the Vmm implementation starts the threads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "vmm/builder/machine.h"
#include "vmm/devices/virtio/virtio_device.h"
#include "vmm/logger/logger.h"
#include "vmm/logger/metrics.h"
#include "vmm/vmm_config/vmm_config.h"

namespace ember::vmm {

// A device that is not described by VmResources (an embedder's own device,
// or a test device), placed on the MMIO bus after the configured ones.
struct ExtraVirtioDevice {
  std::string id;
  std::unique_ptr<virtio::VirtioDevice> device;
};

// Throws common::Error naming what failed (missing kernel, bad drive, a
// device that is not available, KVM errors). Logs
// "event_start/event_end: build microvm for boot" (DEBUG).
Machine build_microvm(const VmResources& resources, Logger& logger, Metrics& metrics,
                      std::vector<ExtraVirtioDevice> extra_devices = {});

// The kernel command line for `resources` without the virtio-mmio device
// entries: boot args (Firecracker's defaults when unset), then the root
// device ("root=/dev/vda ro|rw" or "root=PARTUUID=... ro|rw").
std::string base_cmdline(const VmResources& resources);

}  // namespace ember::vmm
