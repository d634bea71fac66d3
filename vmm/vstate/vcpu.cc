#include "vmm/vstate/vcpu.h"

#include <sys/ioctl.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstdio>
#include <algorithm>

#include "vmm/common/error.h"
#include "vmm/vstate/kvm_abi.h"

namespace ember::vmm {

Vcpu::Vcpu(const Kvm& kvm, const Vm& vm, uint32_t index)
    : index_(index), fd_(::ioctl(vm.fd(), KVM_CREATE_VCPU, static_cast<unsigned long>(index))) {
  if (!fd_) common::throw_errno("KVM_CREATE_VCPU " + std::to_string(index));
  run_ = common::Mapping::map(kvm.vcpu_mmap_size(), PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0,
                              "kvm_run");
}

void Vcpu::fail(const char* what) const {
  common::throw_errno(std::string("vcpu ") + std::to_string(index_) + ": " + what);
}

int Vcpu::run() {
  if (::ioctl(fd_.get(), KVM_RUN, 0) < 0) return -errno;
  return 0;
}

void Vcpu::set_cpuid(const arch::CpuidEntries& entries) {
  kvm_abi::FlexBuffer<kvm_abi::Cpuid2, kvm_cpuid_entry2> buf(entries.size());
  buf.header()->nent = static_cast<uint32_t>(entries.size());
  std::copy(entries.begin(), entries.end(), buf.entries());
  if (::ioctl(fd_.get(), kvm_abi::kSetCpuid2, buf.header()) < 0) fail("KVM_SET_CPUID2");
}

namespace {
std::string msr_hex(uint32_t index) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%#x", index);
  return buf;
}
}  // namespace

std::vector<arch::MsrEntry> Vcpu::get_msrs(const std::vector<uint32_t>& indexes) const {
  kvm_abi::FlexBuffer<kvm_abi::Msrs, kvm_msr_entry> buf(indexes.size());
  buf.header()->nmsrs = static_cast<uint32_t>(indexes.size());
  for (size_t i = 0; i < indexes.size(); ++i) buf.entries()[i].index = indexes[i];
  int n = ::ioctl(fd_.get(), kvm_abi::kGetMsrs, buf.header());
  if (n < 0) fail("KVM_GET_MSRS");
  if (static_cast<size_t>(n) != indexes.size()) {
    throw common::Error("vcpu " + std::to_string(index_) + ": KVM_GET_MSRS cannot read MSR " +
                        msr_hex(indexes[static_cast<size_t>(n)]));
  }
  std::vector<arch::MsrEntry> out;
  for (size_t i = 0; i < indexes.size(); ++i) out.push_back({indexes[i], buf.entries()[i].data});
  return out;
}

void Vcpu::set_msrs(const std::vector<arch::MsrEntry>& entries) {
  kvm_abi::FlexBuffer<kvm_abi::Msrs, kvm_msr_entry> buf(entries.size());
  buf.header()->nmsrs = static_cast<uint32_t>(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    buf.entries()[i].index = entries[i].index;
    buf.entries()[i].data = entries[i].data;
  }
  int n = ::ioctl(fd_.get(), kvm_abi::kSetMsrs, buf.header());
  if (n < 0) fail("KVM_SET_MSRS");
  // KVM stops at the first MSR it refuses and returns how many it set.
  if (static_cast<size_t>(n) != entries.size()) {
    throw common::Error("vcpu " + std::to_string(index_) + ": KVM_SET_MSRS refused MSR " +
                        msr_hex(entries[static_cast<size_t>(n)].index));
  }
}

kvm_regs Vcpu::get_regs() const {
  kvm_regs regs{};
  if (::ioctl(fd_.get(), KVM_GET_REGS, &regs) < 0) fail("KVM_GET_REGS");
  return regs;
}

void Vcpu::set_regs(const kvm_regs& regs) {
  if (::ioctl(fd_.get(), KVM_SET_REGS, &regs) < 0) fail("KVM_SET_REGS");
}

kvm_sregs Vcpu::get_sregs() const {
  kvm_sregs sregs{};
  if (::ioctl(fd_.get(), KVM_GET_SREGS, &sregs) < 0) fail("KVM_GET_SREGS");
  return sregs;
}

void Vcpu::set_sregs(const kvm_sregs& sregs) {
  if (::ioctl(fd_.get(), KVM_SET_SREGS, &sregs) < 0) fail("KVM_SET_SREGS");
}

void Vcpu::set_fpu(const kvm_fpu& fpu) {
  if (::ioctl(fd_.get(), KVM_SET_FPU, &fpu) < 0) fail("KVM_SET_FPU");
}

kvm_lapic_state Vcpu::get_lapic() const {
  kvm_lapic_state lapic{};
  if (::ioctl(fd_.get(), KVM_GET_LAPIC, &lapic) < 0) fail("KVM_GET_LAPIC");
  return lapic;
}

void Vcpu::set_lapic(const kvm_lapic_state& lapic) {
  if (::ioctl(fd_.get(), KVM_SET_LAPIC, &lapic) < 0) fail("KVM_SET_LAPIC");
}

uint32_t Vcpu::get_mp_state() const {
  kvm_mp_state mp{};
  if (::ioctl(fd_.get(), KVM_GET_MP_STATE, &mp) < 0) fail("KVM_GET_MP_STATE");
  return mp.mp_state;
}

void Vcpu::set_mp_state(uint32_t state) {
  kvm_mp_state mp{state};
  if (::ioctl(fd_.get(), KVM_SET_MP_STATE, &mp) < 0) fail("KVM_SET_MP_STATE");
}

void Vcpu::kvmclock_ctrl() { ::ioctl(fd_.get(), KVM_KVMCLOCK_CTRL, 0); }

}  // namespace ember::vmm
