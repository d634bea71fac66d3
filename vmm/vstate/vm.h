// A KVM virtual machine: memory slots, the in-kernel irqchip (PIC, IOAPIC,
// LAPICs) and PIT, GSI routing, irqfds and ioeventfds.
#pragma once

#include <cstdint>
#include <optional>

#include "vmm/common/unique_fd.h"
#include "vmm/vstate/guest_memory.h"
#include "vmm/vstate/kvm.h"

namespace ember::vmm {

class Vm {
 public:
  // KVM_CREATE_VM and KVM_SET_TSS_ADDR.
  explicit Vm(const Kvm& kvm);

  int fd() const { return fd_.get(); }

  // One memory slot per guest memory region.
  void register_memory(const GuestMemory& memory);
  // KVM_CREATE_IRQCHIP, KVM_CREATE_PIT2 (speaker port as a dummy) and the
  // legacy GSI routing: GSI 0-15 to the PIC (except the cascade, 2) and
  // GSI 0-23 to IOAPIC pins 0-23.
  void create_irqchip();

  // Interrupts from eventfds: a write to `eventfd` raises `gsi` (edge).
  void register_irqfd(int eventfd, uint32_t gsi);
  void unregister_irqfd(int eventfd, uint32_t gsi);
  // Guest writes of `len` bytes to `addr` (port I/O space when `pio`) signal
  // `eventfd` instead of exiting to user space; with `datamatch`, only
  // writes of that value do.
  void register_ioeventfd(int eventfd, uint64_t addr, uint32_t len, std::optional<uint64_t> datamatch,
                          bool pio = false);
  void unregister_ioeventfd(int eventfd, uint64_t addr, uint32_t len, std::optional<uint64_t> datamatch,
                            bool pio = false);

 private:
  void set_gsi_routing();

  common::UniqueFd fd_;
  uint32_t slots_ = 0;
};

}  // namespace ember::vmm
