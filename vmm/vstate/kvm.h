// The /dev/kvm system handle: API version and capability checks, and the
// host-wide queries (supported CPUID, MSR list, vCPU mmap size).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vmm/arch/x86_64/cpuid.h"
#include "vmm/common/unique_fd.h"

namespace ember::vmm {

class Kvm {
 public:
  // Opens `path`, checks KVM_GET_API_VERSION == 12 and the capabilities the
  // VMM relies on. `capability_changes` comes from a custom CPU template:
  // positive values are extra required capabilities, negative ones are
  // removed from the required set. Throws common::Error naming what is missing.
  explicit Kvm(const std::vector<int32_t>& capability_changes = {}, const char* path = "/dev/kvm");

  int fd() const { return fd_.get(); }
  int check_extension(unsigned capability) const;
  arch::CpuidEntries supported_cpuid() const;
  std::vector<uint32_t> msr_index_list() const;
  size_t vcpu_mmap_size() const { return vcpu_mmap_size_; }
  uint32_t max_vcpus() const;

  // True when /dev/kvm can be opened and a VM created; `why` says otherwise.
  static bool usable(std::string* why = nullptr);

 private:
  common::UniqueFd fd_;
  size_t vcpu_mmap_size_ = 0;
};

}  // namespace ember::vmm
