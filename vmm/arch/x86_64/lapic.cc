#include "vmm/arch/x86_64/lapic.h"

#include <cstring>

namespace ember::vmm::arch {
namespace {
uint32_t with_delivery_mode(uint32_t reg, uint32_t mode) { return (reg & ~0x700u) | (mode << 8); }
}  // namespace

uint32_t lapic_register(const kvm_lapic_state& state, uint32_t offset) {
  uint32_t value;
  std::memcpy(&value, state.regs + offset, sizeof value);
  return value;
}

void set_lapic_register(kvm_lapic_state& state, uint32_t offset, uint32_t value) {
  std::memcpy(state.regs + offset, &value, sizeof value);
}

void set_lint_delivery_modes(kvm_lapic_state& state) {
  set_lapic_register(state, kApicLvtLint0,
                     with_delivery_mode(lapic_register(state, kApicLvtLint0), kApicDeliveryExtInt));
  set_lapic_register(state, kApicLvtLint1,
                     with_delivery_mode(lapic_register(state, kApicLvtLint1), kApicDeliveryNmi));
}

}  // namespace ember::vmm::arch
