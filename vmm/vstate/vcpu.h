// One KVM vCPU: its fd, the shared kvm_run page, and the state ioctls.
#pragma once

#include <linux/kvm.h>

#include <atomic>
#include <cstdint>
#include <vector>

#include "vmm/arch/x86_64/cpuid.h"
#include "vmm/arch/x86_64/msr.h"
#include "vmm/common/mapping.h"
#include "vmm/common/unique_fd.h"
#include "vmm/vstate/kvm.h"
#include "vmm/vstate/vm.h"

namespace ember::vmm {

class Vcpu {
 public:
  // KVM_CREATE_VCPU with id `index` (also its APIC ID) and the kvm_run mapping.
  Vcpu(const Kvm& kvm, const Vm& vm, uint32_t index);

  uint32_t index() const { return index_; }
  int fd() const { return fd_.get(); }
  kvm_run* run_state() const { return reinterpret_cast<kvm_run*>(run_.data()); }

  // KVM_RUN: 0 on a VM exit to user space, or -errno (EINTR when kicked).
  int run();
  // kvm_run.immediate_exit is written by the kicking thread and read by KVM
  // on entry: an atomic store keeps the handoff well defined.
  void set_immediate_exit(bool on) const {
    std::atomic_ref<uint8_t>(run_state()->immediate_exit).store(on ? 1 : 0, std::memory_order_release);
  }

  void set_cpuid(const arch::CpuidEntries& entries);
  // Reads the current values of `indexes`; throws if KVM does not know one.
  std::vector<arch::MsrEntry> get_msrs(const std::vector<uint32_t>& indexes) const;
  // Throws naming the first MSR KVM refused.
  void set_msrs(const std::vector<arch::MsrEntry>& entries);

  kvm_regs get_regs() const;
  void set_regs(const kvm_regs& regs);
  kvm_sregs get_sregs() const;
  void set_sregs(const kvm_sregs& sregs);
  void set_fpu(const kvm_fpu& fpu);
  kvm_lapic_state get_lapic() const;
  void set_lapic(const kvm_lapic_state& lapic);
  uint32_t get_mp_state() const;
  void set_mp_state(uint32_t state);
  // Tells KVM the guest was paused on purpose (no soft-lockup warnings); best effort.
  void kvmclock_ctrl();

 private:
  [[noreturn]] void fail(const char* what) const;

  uint32_t index_;
  common::UniqueFd fd_;
  common::Mapping run_;
};

}  // namespace ember::vmm
