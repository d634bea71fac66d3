// Everything a built microVM consists of, before its threads run. The builder
// fills it; the Vmm implementation starts and owns it. Members are declared
// in dependency order: destruction runs bottom-up, so vCPUs and devices go
// before the event loop, the VM fd and finally guest memory.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "vmm/common/event_loop.h"
#include "vmm/devices/bus.h"
#include "vmm/devices/legacy/boot_timer.h"
#include "vmm/devices/legacy/i8042.h"
#include "vmm/devices/legacy/serial.h"
#include "vmm/devices/virtio/mmio/mmio_transport.h"
#include "vmm/loader/kernel_image.h"
#include "vmm/vstate/exit_latch.h"
#include "vmm/vstate/guest_memory.h"
#include "vmm/vstate/kvm.h"
#include "vmm/vstate/vcpu_thread.h"
#include "vmm/vstate/vm.h"

namespace ember::vmm {

// One virtio device on the MMIO bus.
struct VirtioSlot {
  std::string id;  // drive_id, iface_id, "vsock", "entropy"
  virtio::DeviceType type;
  uint64_t base = 0;
  uint32_t gsi = 0;
  std::shared_ptr<virtio::MmioTransport> transport;
};

struct Machine {
  std::unique_ptr<GuestMemory> memory;
  std::unique_ptr<Kvm> kvm;
  std::unique_ptr<Vm> vm;
  std::unique_ptr<common::EventLoop> loop;
  std::unique_ptr<ExitLatch> exits;
  std::unique_ptr<Bus> pio_bus;
  std::unique_ptr<Bus> mmio_bus;
  std::shared_ptr<Serial> serial;
  std::shared_ptr<I8042> i8042;
  std::vector<VirtioSlot> virtio;
  std::vector<std::unique_ptr<VcpuThread>> vcpus;

  // What was booted, for logs and tests.
  loader::KernelImage kernel;
  std::string cmdline;
  BootTimestamp build_start;
};

}  // namespace ember::vmm
