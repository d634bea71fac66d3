// Guest CPUID: KVM_GET_SUPPORTED_CPUID adjusted per vCPU ("normalisation",
// Firecracker docs/cpu_templates/cpuid-normalization.md): topology, APIC IDs,
// cache sharing, brand string, features a VM must not advertise.
#pragma once

#include <linux/kvm.h>

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace ember::vmm::arch {

struct CpuidRegs {
  uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
};

enum class CpuVendor { kIntel, kAmd, kOther };

// Executes CPUID on the host; replaceable in tests.
using HostCpuid = std::function<CpuidRegs(uint32_t leaf, uint32_t subleaf)>;
CpuidRegs host_cpuid(uint32_t leaf, uint32_t subleaf);

using CpuidEntries = std::vector<kvm_cpuid_entry2>;

kvm_cpuid_entry2* find_cpuid(CpuidEntries& entries, uint32_t leaf, uint32_t subleaf);
const kvm_cpuid_entry2* find_cpuid(const CpuidEntries& entries, uint32_t leaf, uint32_t subleaf);

CpuVendor cpuid_vendor(const CpuidEntries& entries);
CpuVendor host_vendor(const HostCpuid& cpuid = host_cpuid);

struct CpuTopology {
  uint8_t cpu_index = 0;  // this vCPU, 0-based; also its APIC ID
  uint8_t cpu_count = 1;
  bool smt = false;  // two threads per core
};

// Applies the per-vCPU adjustments to a copy of the supported CPUID. Throws
// common::Error when a leaf the adjustment needs is missing.
void normalize_cpuid(CpuidEntries& entries, const CpuTopology& topology,
                     const HostCpuid& cpuid = host_cpuid);

// Brand string Intel guests see: "Intel(R) Xeon(R) Processor @ <host frequency>",
// or without the frequency when the host string has none.
std::string intel_brand_string(const std::string& host_brand);
void set_brand_string(CpuidEntries& entries, const std::string& brand);

}  // namespace ember::vmm::arch
