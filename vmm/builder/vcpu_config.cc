#include "vmm/builder/vcpu_config.h"

#include "vmm/arch/x86_64/cpu_templates.h"
#include "vmm/arch/x86_64/lapic.h"
#include "vmm/arch/x86_64/msr.h"
#include "vmm/arch/x86_64/regs.h"

namespace ember::vmm {

void configure_vcpu(Vcpu& vcpu, const GuestMemory& memory, const VcpuBootConfig& config) {
  arch::CpuidEntries cpuid = config.cpuid;
  arch::normalize_cpuid(cpuid, {static_cast<uint8_t>(vcpu.index()), config.vcpu_count, config.smt});
  vcpu.set_cpuid(cpuid);

  // Template MSRs are read only after KVM_SET_CPUID2: KVM decides which MSRs
  // exist (and their defaults) from the guest CPUID.
  std::vector<arch::MsrEntry> msrs = arch::boot_msr_entries();
  if (config.cpu_template && !config.cpu_template->msr_modifiers.empty()) {
    auto templated = vcpu.get_msrs(arch::template_msr_indexes(*config.cpu_template));
    arch::apply_msr_template(templated, *config.cpu_template);
    msrs.insert(msrs.end(), templated.begin(), templated.end());
  }
  vcpu.set_msrs(msrs);

  if (vcpu.index() == 0) {
    vcpu.set_regs(arch::boot_regs(config.protocol, config.entry));
    kvm_sregs sregs = vcpu.get_sregs();
    arch::configure_boot_sregs(memory, config.protocol, sregs);
    vcpu.set_sregs(sregs);
  }
  vcpu.set_fpu(arch::boot_fpu());
  kvm_lapic_state lapic = vcpu.get_lapic();
  arch::set_lint_delivery_modes(lapic);
  vcpu.set_lapic(lapic);
}

}  // namespace ember::vmm
