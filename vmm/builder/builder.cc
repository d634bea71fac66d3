#include "vmm/builder/builder.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "vmm/arch/x86_64/cpu_templates.h"
#include "vmm/arch/x86_64/layout.h"
#include "vmm/arch/x86_64/linux_boot.h"
#include "vmm/arch/x86_64/memory_map.h"
#include "vmm/arch/x86_64/mptable.h"
#include "vmm/arch/x86_64/pvh.h"
#include "vmm/builder/vcpu_config.h"
#include "vmm/builder/virtio_devices.h"
#include "vmm/common/error.h"
#include "vmm/loader/cmdline.h"
#include "vmm/loader/initrd_loader.h"
#include "vmm/loader/kernel_loader.h"

namespace ember::vmm {
namespace {

struct PendingDevice {
  std::string id;
  std::unique_ptr<virtio::VirtioDevice> device;
};

// Firecracker's bus order: block (root first), net, vsock, entropy.
std::vector<PendingDevice> create_devices(const VmResources& r, Logger& logger, Metrics& metrics) {
  std::vector<PendingDevice> out;
  std::vector<const DriveConfig*> drives;
  for (const auto& d : r.drives) drives.push_back(&d);
  std::stable_partition(drives.begin(), drives.end(), [](const DriveConfig* d) { return d->is_root_device; });
  for (const auto* d : drives) out.push_back({d->drive_id, create_block_device(*d, logger, metrics)});
  for (const auto& n : r.network_interfaces) out.push_back({n.iface_id, create_net_device(n, logger, metrics)});
  if (r.vsock) out.push_back({"vsock", create_vsock_device(*r.vsock, logger, metrics)});
  if (r.entropy) out.push_back({"entropy", create_entropy_device(*r.entropy, logger, metrics)});
  return out;
}

void validate(const VmResources& r) {
  if (!r.boot_source || r.boot_source->kernel_image_path.empty()) {
    throw common::Error("Cannot start microvm without kernel configuration.");
  }
  if (r.machine.vcpu_count < 1 || r.machine.vcpu_count > kMaxVcpus) {
    throw common::Error("invalid vcpu_count " + std::to_string(r.machine.vcpu_count) + ": must be 1.." +
                        std::to_string(kMaxVcpus));
  }
  if (r.machine.mem_size_mib == 0) throw common::Error("invalid mem_size_mib 0: must be greater than 0");
}

// Guest serial output: the file at serial_out_path, else stdout.
std::shared_ptr<Serial> make_serial(const VmResources& r, Metrics& metrics) {
  if (!r.serial_out_path) return std::make_shared<Serial>(STDOUT_FILENO, common::UniqueFd(), metrics);
  // O_RDWR so a FIFO without a reader yet opens (and never raises SIGPIPE
  // on us); O_NONBLOCK so a stalled reader costs bytes, not a stuck vCPU.
  common::UniqueFd fd(::open(r.serial_out_path->c_str(), O_RDWR | O_CREAT | O_APPEND | O_NONBLOCK | O_CLOEXEC, 0600));
  if (!fd) common::throw_errno("open serial output " + *r.serial_out_path);
  return std::make_shared<Serial>(-1, std::move(fd), metrics);
}

// Guest serial input from stdin when the console is stdout (a terminal or a
// pipe; regular files and /dev/null cannot be polled and are skipped).
void attach_serial_input(common::EventLoop& loop, std::shared_ptr<Serial> serial, Metrics& metrics) {
  Counter& missed = metrics.counter("uart", "missed_read_count");
  try {
    loop.add(STDIN_FILENO, EPOLLIN, [&loop, serial, &missed](uint32_t events) {
      int available = 0;
      if (::ioctl(STDIN_FILENO, FIONREAD, &available) < 0 || available <= 0) {
        // Nothing to read on a readable fd: EOF or hang-up. Stop watching it.
        if (events & (EPOLLHUP | EPOLLERR) || available == 0) loop.remove(STDIN_FILENO);
        return;
      }
      uint8_t buf[64];
      ssize_t n = ::read(STDIN_FILENO, buf, std::min<size_t>(sizeof buf, static_cast<size_t>(available)));
      if (n <= 0) {
        if (n == 0 || errno != EINTR) loop.remove(STDIN_FILENO);
        return;
      }
      size_t taken = serial->enqueue_input(std::span<const uint8_t>(buf, static_cast<size_t>(n)));
      missed.inc(static_cast<size_t>(n) - taken);
    });
  } catch (const common::Error&) {
    // Not pollable (regular file, /dev/null) or closed: no serial input.
  }
}

}  // namespace

std::string base_cmdline(const VmResources& r) {
  loader::KernelCmdline cmdline(arch::kCmdlineMaxSize);
  cmdline.append(r.boot_source && r.boot_source->boot_args ? *r.boot_source->boot_args : kDefaultBootArgs);
  for (const auto& d : r.drives) {
    if (!d.is_root_device) continue;
    std::string root = d.partuuid ? "root=PARTUUID=" + *d.partuuid : "root=/dev/vda";
    cmdline.append(root + (d.is_read_only ? " ro" : " rw"));
    break;
  }
  return cmdline.str();
}

Machine build_microvm(const VmResources& r, Logger& logger, Metrics& metrics,
                      std::vector<ExtraVirtioDevice> extra_devices) {
  Machine m;
  m.build_start = BootTimestamp::now();
  LOG_DEBUG(logger, "event_start: build microvm for boot");
  validate(r);
  const uint32_t vcpu_count = r.machine.vcpu_count;

  auto cpu_template = arch::effective_cpu_template(r);
  if (r.machine.cpu_template != CpuTemplate::kNone && !r.cpu_config) {
    arch::check_static_template_host(r.machine.cpu_template, arch::host_vendor(), arch::host_cpuid(1, 0).eax);
  }

  // Devices first: a bad drive path fails before any KVM or memory work.
  std::vector<PendingDevice> devices = create_devices(r, logger, metrics);
  for (auto& extra : extra_devices) devices.push_back({extra.id, std::move(extra.device)});
  if (devices.size() > arch::kMaxVirtioMmioDevices) {
    throw common::Error("too many virtio devices: " + std::to_string(devices.size()) + ", at most " +
                        std::to_string(arch::kMaxVirtioMmioDevices));
  }

  m.kvm = std::make_unique<Kvm>(cpu_template ? cpu_template->kvm_capabilities : std::vector<int32_t>{});
  if (vcpu_count > m.kvm->max_vcpus()) {
    throw common::Error("KVM supports at most " + std::to_string(m.kvm->max_vcpus()) + " vCPUs, " +
                        std::to_string(vcpu_count) + " requested");
  }
  m.memory = std::make_unique<GuestMemory>(
      GuestMemory::anonymous(arch::arch_memory_regions(r.machine.mem_size_mib << 20)));
  m.vm = std::make_unique<Vm>(*m.kvm);
  m.vm->register_memory(*m.memory);
  m.vm->create_irqchip();

  const GuestMemory& mem = *m.memory;
  m.kernel = loader::load_kernel(mem, r.boot_source->kernel_image_path);
  if (m.kernel.protocol == arch::BootProtocol::kPvh) LOG_DEBUG(logger, "Kernel loaded using PVH boot protocol");
  arch::BootInfo boot;
  if (r.boot_source->initrd_path) boot.initrd = loader::load_initrd(mem, *r.boot_source->initrd_path, m.kernel.end);
  boot.setup_header = m.kernel.setup_header;

  m.loop = std::make_unique<common::EventLoop>();
  m.exits = std::make_unique<ExitLatch>();
  m.pio_bus = std::make_unique<Bus>();
  m.mmio_bus = std::make_unique<Bus>();

  m.serial = make_serial(r, metrics);
  m.pio_bus->insert(m.serial, arch::kSerialPort, arch::kSerialPortSize);
  m.vm->register_irqfd(m.serial->interrupt_event().fd(), arch::kSerialGsi);
  if (!r.serial_out_path) attach_serial_input(*m.loop, m.serial, metrics);

  ExitLatch* exits = m.exits.get();
  m.i8042 = std::make_shared<I8042>([exits] { exits->request({0, "guest reset through i8042"}); }, logger, metrics);
  m.pio_bus->insert(m.i8042, arch::kI8042Port, arch::kI8042PortSize);
  m.vm->register_irqfd(m.i8042->interrupt_event().fd(), arch::kI8042Gsi);

  if (r.boot_timer) {
    m.mmio_bus->insert(std::make_shared<BootTimer>(m.build_start, logger), arch::kBootTimerAddr,
                       arch::kBootTimerSize);
  }

  loader::KernelCmdline cmdline(arch::kCmdlineMaxSize);
  cmdline.append(base_cmdline(r));
  for (size_t i = 0; i < devices.size(); ++i) {
    VirtioSlot slot;
    slot.id = devices[i].id;
    slot.type = devices[i].device->device_type();
    slot.base = arch::kVirtioMmioStart + i * arch::kVirtioMmioSize;
    slot.gsi = arch::kFirstVirtioGsi + static_cast<uint32_t>(i);
    slot.transport = std::make_shared<virtio::MmioTransport>(std::move(devices[i].device), mem, *m.loop, logger);
    m.mmio_bus->insert(slot.transport, slot.base, arch::kVirtioMmioSize);
    m.vm->register_irqfd(slot.transport->interrupt_event().fd(), slot.gsi);
    const auto& notify = slot.transport->queue_events();
    for (size_t q = 0; q < notify.size(); ++q) {
      m.vm->register_ioeventfd(notify[q]->fd(), slot.base + virtio::kMmioQueueNotify, 4, q);
    }
    cmdline.add_virtio_mmio_device(arch::kVirtioMmioSize, slot.base, slot.gsi);
    m.virtio.push_back(std::move(slot));
  }
  m.cmdline = cmdline.str();
  std::string text = m.cmdline;
  text.push_back('\0');
  mem.write(GuestAddress(arch::kCmdlineStart),
            std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  boot.cmdline_addr = GuestAddress(arch::kCmdlineStart);
  boot.cmdline_size = cmdline.size_with_nul();

  arch::setup_mptable(mem, vcpu_count);
  if (m.kernel.protocol == arch::BootProtocol::kPvh) {
    arch::configure_pvh_boot(mem, boot);
  } else {
    arch::configure_linux_boot(mem, boot);
  }

  VcpuBootConfig vcpu_config;
  vcpu_config.cpuid = m.kvm->supported_cpuid();
  if (cpu_template) arch::apply_cpuid_template(vcpu_config.cpuid, *cpu_template);
  vcpu_config.cpu_template = cpu_template;
  vcpu_config.vcpu_count = static_cast<uint8_t>(vcpu_count);
  vcpu_config.smt = r.machine.smt;
  vcpu_config.protocol = m.kernel.protocol;
  vcpu_config.entry = m.kernel.entry;
  for (uint32_t i = 0; i < vcpu_count; ++i) {
    auto vcpu = std::make_unique<Vcpu>(*m.kvm, *m.vm, i);
    configure_vcpu(*vcpu, mem, vcpu_config);
    m.vcpus.push_back(
        std::make_unique<VcpuThread>(std::move(vcpu), *m.pio_bus, *m.mmio_bus, *m.exits, logger, metrics));
  }
  LOG_DEBUG(logger, "event_end: build microvm for boot");
  return m;
}

}  // namespace ember::vmm
