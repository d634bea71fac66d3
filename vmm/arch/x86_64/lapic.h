// Local APIC set-up at boot: LINT0 in ExtINT mode (the 8259 PIC's output) and
// LINT1 as NMI, as a PC BIOS leaves them (Intel MP spec 1.4 §3.6.2.2, virtual wire mode).
#pragma once

#include <linux/kvm.h>

#include <cstdint>

namespace ember::vmm::arch {

inline constexpr uint32_t kApicLvtLint0 = 0x350;
inline constexpr uint32_t kApicLvtLint1 = 0x360;
inline constexpr uint32_t kApicDeliveryNmi = 4;
inline constexpr uint32_t kApicDeliveryExtInt = 7;

uint32_t lapic_register(const kvm_lapic_state& state, uint32_t offset);
void set_lapic_register(kvm_lapic_state& state, uint32_t offset, uint32_t value);
void set_lint_delivery_modes(kvm_lapic_state& state);

}  // namespace ember::vmm::arch
