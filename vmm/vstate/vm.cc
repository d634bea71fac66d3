#include "vmm/vstate/vm.h"

#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <vector>

#include "vmm/arch/x86_64/layout.h"
#include "vmm/common/error.h"
#include "vmm/vstate/kvm_abi.h"

namespace ember::vmm {
namespace {

std::string hex(uint64_t v) { return to_string(GuestAddress(v)); }

}  // namespace

Vm::Vm(const Kvm& kvm) : fd_(::ioctl(kvm.fd(), KVM_CREATE_VM, 0)) {
  if (!fd_) common::throw_errno("KVM_CREATE_VM");
  if (::ioctl(fd_.get(), KVM_SET_TSS_ADDR, static_cast<unsigned long>(arch::kTssAddr)) < 0) {
    common::throw_errno("KVM_SET_TSS_ADDR " + hex(arch::kTssAddr));
  }
}

void Vm::register_memory(const GuestMemory& memory) {
  for (const auto& region : memory.regions()) {
    kvm_userspace_memory_region slot{};
    slot.slot = slots_;
    slot.guest_phys_addr = region.start.raw();
    slot.memory_size = region.size();
    slot.userspace_addr = reinterpret_cast<uint64_t>(region.mapping.data());
    if (::ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &slot) < 0) {
      common::throw_errno("KVM_SET_USER_MEMORY_REGION slot " + std::to_string(slots_) + " at " +
                          hex(slot.guest_phys_addr) + " (" + std::to_string(slot.memory_size) + " bytes)");
    }
    ++slots_;
  }
}

void Vm::create_irqchip() {
  if (::ioctl(fd_.get(), KVM_CREATE_IRQCHIP, 0) < 0) common::throw_errno("KVM_CREATE_IRQCHIP");
  kvm_pit_config pit{};
  pit.flags = KVM_PIT_SPEAKER_DUMMY;
  if (::ioctl(fd_.get(), KVM_CREATE_PIT2, &pit) < 0) common::throw_errno("KVM_CREATE_PIT2");
  set_gsi_routing();
}

void Vm::set_gsi_routing() {
  std::vector<kvm_irq_routing_entry> entries;
  for (uint32_t gsi = 0; gsi <= arch::kLastLegacyGsi; ++gsi) {
    if (gsi < 16 && gsi != 2) {
      kvm_irq_routing_entry e{};
      e.gsi = gsi;
      e.type = KVM_IRQ_ROUTING_IRQCHIP;
      e.u.irqchip.irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE;
      e.u.irqchip.pin = gsi % 8;
      entries.push_back(e);
    }
    kvm_irq_routing_entry e{};
    e.gsi = gsi;
    e.type = KVM_IRQ_ROUTING_IRQCHIP;
    e.u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
    // Identity mapping, as KVM's default routing and the MPTable's INTSRC entries.
    e.u.irqchip.pin = gsi;
    entries.push_back(e);
  }
  kvm_abi::FlexBuffer<kvm_abi::IrqRouting, kvm_irq_routing_entry> routing(entries.size());
  routing.header()->nr = static_cast<uint32_t>(entries.size());
  std::copy(entries.begin(), entries.end(), routing.entries());
  if (::ioctl(fd_.get(), kvm_abi::kSetGsiRouting, routing.header()) < 0) common::throw_errno("KVM_SET_GSI_ROUTING");
}

void Vm::register_irqfd(int eventfd, uint32_t gsi) {
  kvm_irqfd irqfd{};
  irqfd.fd = static_cast<uint32_t>(eventfd);
  irqfd.gsi = gsi;
  if (::ioctl(fd_.get(), KVM_IRQFD, &irqfd) < 0) common::throw_errno("KVM_IRQFD for GSI " + std::to_string(gsi));
}

void Vm::unregister_irqfd(int eventfd, uint32_t gsi) {
  kvm_irqfd irqfd{};
  irqfd.fd = static_cast<uint32_t>(eventfd);
  irqfd.gsi = gsi;
  irqfd.flags = KVM_IRQFD_FLAG_DEASSIGN;
  if (::ioctl(fd_.get(), KVM_IRQFD, &irqfd) < 0) {
    common::throw_errno("KVM_IRQFD deassign for GSI " + std::to_string(gsi));
  }
}

namespace {
kvm_ioeventfd make_ioeventfd(int eventfd, uint64_t addr, uint32_t len, std::optional<uint64_t> datamatch,
                             bool pio) {
  kvm_ioeventfd io{};
  io.fd = eventfd;
  io.addr = addr;
  io.len = len;
  if (datamatch) {
    io.flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
    io.datamatch = *datamatch;
  }
  if (pio) io.flags |= KVM_IOEVENTFD_FLAG_PIO;
  return io;
}
}  // namespace

void Vm::register_ioeventfd(int eventfd, uint64_t addr, uint32_t len, std::optional<uint64_t> datamatch,
                            bool pio) {
  kvm_ioeventfd io = make_ioeventfd(eventfd, addr, len, datamatch, pio);
  if (::ioctl(fd_.get(), KVM_IOEVENTFD, &io) < 0) common::throw_errno("KVM_IOEVENTFD at " + hex(addr));
}

void Vm::unregister_ioeventfd(int eventfd, uint64_t addr, uint32_t len, std::optional<uint64_t> datamatch,
                              bool pio) {
  kvm_ioeventfd io = make_ioeventfd(eventfd, addr, len, datamatch, pio);
  io.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
  if (::ioctl(fd_.get(), KVM_IOEVENTFD, &io) < 0) {
    common::throw_errno("KVM_IOEVENTFD deassign at " + hex(addr));
  }
}

}  // namespace ember::vmm
