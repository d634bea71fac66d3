// Per-vCPU boot configuration: CPUID (template + normalisation), MSRs
// (boot values + template), registers for the boot vCPU, FPU, LAPIC.
#pragma once

#include <optional>

#include "vmm/arch/x86_64/boot_info.h"
#include "vmm/arch/x86_64/cpuid.h"
#include "vmm/vmm_config/vmm_config.h"
#include "vmm/vstate/guest_memory.h"
#include "vmm/vstate/vcpu.h"

namespace ember::vmm {

struct VcpuBootConfig {
  arch::CpuidEntries cpuid;  // supported CPUID with the template applied
  std::optional<CustomCpuTemplate> cpu_template;
  uint8_t vcpu_count = 1;
  bool smt = false;
  arch::BootProtocol protocol = arch::BootProtocol::kLinux64;
  GuestAddress entry;
};

// vCPU 0 starts at the kernel entry; the others stay in KVM's wait-for-SIPI
// state until the guest brings them up with INIT/SIPI through its LAPIC.
void configure_vcpu(Vcpu& vcpu, const GuestMemory& memory, const VcpuBootConfig& config);

}  // namespace ember::vmm
