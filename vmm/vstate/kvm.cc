#include "vmm/vstate/kvm.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <cerrno>

#include "vmm/common/error.h"
#include "vmm/vstate/kvm_abi.h"

namespace ember::vmm {
namespace {

struct NamedCap {
  unsigned cap;
  const char* name;
};

// What ember's VM set-up uses (reference §2.4 "KVM caps checked"), plus
// IMMEDIATE_EXIT for kicking vCPUs without racing KVM_RUN.
constexpr NamedCap kRequiredCaps[] = {
    {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
    {KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"},
    {KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},
    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
    {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"},
    {KVM_CAP_PIT2, "KVM_CAP_PIT2"},
    {KVM_CAP_PIT_STATE2, "KVM_CAP_PIT_STATE2"},
    {KVM_CAP_ADJUST_CLOCK, "KVM_CAP_ADJUST_CLOCK"},
    {KVM_CAP_DEBUGREGS, "KVM_CAP_DEBUGREGS"},
    {KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE"},
    {KVM_CAP_VCPU_EVENTS, "KVM_CAP_VCPU_EVENTS"},
    {KVM_CAP_XCRS, "KVM_CAP_XCRS"},
    {KVM_CAP_XSAVE, "KVM_CAP_XSAVE"},
    {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
};

}  // namespace

Kvm::Kvm(const std::vector<int32_t>& capability_changes, const char* path)
    : fd_(::open(path, O_RDWR | O_CLOEXEC)) {
  if (!fd_) common::throw_errno(std::string("open ") + path);
  int version = ::ioctl(fd_.get(), KVM_GET_API_VERSION, 0);
  if (version != KVM_API_VERSION) {
    throw common::Error(std::string("KVM at ") + path + " has API version " + std::to_string(version) +
                        ", ember needs " + std::to_string(KVM_API_VERSION));
  }
  std::vector<unsigned> required;
  for (const auto& c : kRequiredCaps) required.push_back(c.cap);
  for (int32_t change : capability_changes) {
    if (change >= 0) {
      required.push_back(static_cast<unsigned>(change));
    } else {
      unsigned removed = static_cast<unsigned>(-static_cast<int64_t>(change));
      required.erase(std::remove(required.begin(), required.end(), removed), required.end());
    }
  }
  for (unsigned cap : required) {
    if (check_extension(cap) > 0) continue;
    std::string name = "capability " + std::to_string(cap);
    for (const auto& c : kRequiredCaps) {
      if (c.cap == cap) name = c.name;
    }
    throw common::Error(std::string("KVM at ") + path + " lacks " + name);
  }
  int size = ::ioctl(fd_.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
  if (size <= 0) common::throw_errno("KVM_GET_VCPU_MMAP_SIZE");
  vcpu_mmap_size_ = static_cast<size_t>(size);
}

int Kvm::check_extension(unsigned capability) const {
  int r = ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, capability);
  return r < 0 ? 0 : r;
}

uint32_t Kvm::max_vcpus() const {
  int n = check_extension(KVM_CAP_MAX_VCPUS);
  if (n <= 0) n = check_extension(KVM_CAP_NR_VCPUS);
  return n <= 0 ? 4 : static_cast<uint32_t>(n);
}

arch::CpuidEntries Kvm::supported_cpuid() const {
  // Grow the buffer until KVM stops answering E2BIG.
  for (uint32_t n = 128; n <= 4096; n *= 2) {
    kvm_abi::FlexBuffer<kvm_abi::Cpuid2, kvm_cpuid_entry2> buf(n);
    buf.header()->nent = n;
    if (::ioctl(fd_.get(), kvm_abi::kGetSupportedCpuid, buf.header()) == 0) {
      return arch::CpuidEntries(buf.entries(), buf.entries() + buf.header()->nent);
    }
    if (errno != E2BIG) common::throw_errno("KVM_GET_SUPPORTED_CPUID");
  }
  throw common::Error("KVM_GET_SUPPORTED_CPUID: more than 4096 entries");
}

std::vector<uint32_t> Kvm::msr_index_list() const {
  for (uint32_t n = 256; n <= 16384; n *= 2) {
    kvm_abi::FlexBuffer<kvm_abi::MsrList, uint32_t> buf(n);
    buf.header()->nmsrs = n;
    if (::ioctl(fd_.get(), kvm_abi::kGetMsrIndexList, buf.header()) == 0) {
      return std::vector<uint32_t>(buf.entries(), buf.entries() + buf.header()->nmsrs);
    }
    if (errno != E2BIG) common::throw_errno("KVM_GET_MSR_INDEX_LIST");
  }
  throw common::Error("KVM_GET_MSR_INDEX_LIST: too many MSRs");
}

bool Kvm::usable(std::string* why) {
  try {
    Kvm kvm;
    common::UniqueFd vm(::ioctl(kvm.fd(), KVM_CREATE_VM, 0));
    if (!vm) common::throw_errno("KVM_CREATE_VM");
    return true;
  } catch (const common::Error& e) {
    if (why) *why = e.what();
    return false;
  }
}

}  // namespace ember::vmm
