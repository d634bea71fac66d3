#include "vmm/arch/x86_64/cpuid.h"

#include <cpuid.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>

#include "vmm/common/error.h"

namespace ember::vmm::arch {
namespace {

constexpr uint32_t kSignificantIndex = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;

void set_bit(uint32_t& reg, unsigned bit, bool on) {
  reg = (reg & ~(1u << bit)) | (static_cast<uint32_t>(on) << bit);
}

// Sets bits [lo, hi] of `reg` to `value` (truncated to the field).
void set_field(uint32_t& reg, unsigned lo, unsigned hi, uint32_t value) {
  uint32_t mask = (hi - lo == 31) ? ~0u : (((1u << (hi - lo + 1)) - 1) << lo);
  reg = (reg & ~mask) | ((value << lo) & mask);
}

uint32_t get_field(uint32_t reg, unsigned lo, unsigned hi) {
  uint32_t mask = (hi - lo == 31) ? ~0u : ((1u << (hi - lo + 1)) - 1);
  return (reg >> lo) & mask;
}

kvm_cpuid_entry2& require(CpuidEntries& entries, uint32_t leaf, uint32_t subleaf) {
  kvm_cpuid_entry2* e = find_cpuid(entries, leaf, subleaf);
  if (!e) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "CPUID leaf %#x subleaf %u is missing", leaf, subleaf);
    throw common::Error(std::string("normalize CPUID: ") + buf);
  }
  return *e;
}

kvm_cpuid_entry2& insert_or_get(CpuidEntries& entries, uint32_t leaf, uint32_t subleaf,
                                uint32_t flags) {
  if (auto* e = find_cpuid(entries, leaf, subleaf)) return *e;
  kvm_cpuid_entry2 e{};
  e.function = leaf;
  e.index = subleaf;
  e.flags = flags;
  entries.push_back(e);
  return entries.back();
}

uint32_t next_power_of_two(uint32_t v) {
  uint32_t p = 1;
  while (p < v) p <<= 1;
  return p;
}

std::string host_brand(const HostCpuid& cpuid) {
  char brand[49] = {};
  for (uint32_t i = 0; i < 3; ++i) {
    CpuidRegs r = cpuid(0x80000002 + i, 0);
    std::memcpy(brand + i * 16 + 0, &r.eax, 4);
    std::memcpy(brand + i * 16 + 4, &r.ebx, 4);
    std::memcpy(brand + i * 16 + 8, &r.ecx, 4);
    std::memcpy(brand + i * 16 + 12, &r.edx, 4);
  }
  return brand;
}

// Leaf 0xB (and 0x1F): one SMT level and one core level holding every vCPU.
void update_extended_topology(CpuidEntries& entries, uint32_t leaf, const CpuTopology& t) {
  const uint32_t cpu_bits = t.smt ? 1 : 0;
  const uint32_t cpus_per_core = 1u << cpu_bits;
  insert_or_get(entries, leaf, 0, kSignificantIndex);
  insert_or_get(entries, leaf, 1, kSignificantIndex);
  for (auto& e : entries) {
    if (e.function != leaf) continue;
    e.eax = e.ebx = e.ecx = 0;
    e.edx = t.cpu_index;  // x2APIC ID
    e.flags = kSignificantIndex;
    if (e.index == 0) {
      set_field(e.eax, 0, 4, cpu_bits);
      set_field(e.ebx, 0, 15, cpus_per_core);
      set_field(e.ecx, 8, 15, 1);  // domain: logical processor
    } else if (e.index == 1) {
      // Shift such that the next level (package) holds every possible vCPU (32 -> 5 bits).
      set_field(e.eax, 0, 4, 5);
      set_field(e.ebx, 0, 15, t.cpu_count);
      set_field(e.ecx, 0, 7, 1);
      set_field(e.ecx, 8, 15, 2);  // domain: core
    } else {
      set_field(e.ecx, 0, 7, e.index);  // invalid domain: only the index echoes back
    }
  }
}

void normalize_intel(CpuidEntries& entries, const CpuTopology& t, const HostCpuid& cpuid) {
  const uint32_t cpus_per_core = t.smt ? 2 : 1;
  // Leaf 4: deterministic cache parameters; L1/L2 shared by a core's threads, L3 by all.
  for (auto& e : entries) {
    if (e.function != 0x4) continue;
    if (e.eax == 0 && e.ebx == 0 && e.ecx == 0 && e.edx == 0) continue;
    uint32_t level = get_field(e.eax, 5, 7);
    if (level == 1 || level == 2) set_field(e.eax, 14, 25, cpus_per_core - 1);
    if (level == 3) set_field(e.eax, 14, 25, t.cpu_count - 1u);
    set_field(e.eax, 26, 31, t.cpu_count / cpus_per_core - 1u);
  }
  // Leaf 6: no Turbo Boost (EAX[1]) and no performance-energy bias (ECX[3]).
  auto& leaf6 = require(entries, 0x6, 0);
  set_bit(leaf6.eax, 1, false);
  set_bit(leaf6.ecx, 3, false);
  // Leaf 7: FDP_EXCPTN_ONLY (EBX[6]) and FPU CS/DS deprecation (EBX[13]) as
  // modern CPUs report them; no WAITPKG (ECX[5]), KVM cannot pass it through safely.
  auto& leaf7 = require(entries, 0x7, 0);
  set_bit(leaf7.ebx, 6, true);
  set_bit(leaf7.ebx, 13, true);
  set_bit(leaf7.ecx, 5, false);
  // Leaf 0xA: no architectural PMU.
  auto& leafa = require(entries, 0xa, 0);
  leafa.eax = leafa.ebx = leafa.ecx = leafa.edx = 0;
  if (find_cpuid(entries, 0x1f, 0)) update_extended_topology(entries, 0x1f, t);
  set_brand_string(entries, intel_brand_string(host_brand(cpuid)));
}

void normalize_amd(CpuidEntries& entries, const CpuTopology& t, const HostCpuid& cpuid) {
  const uint32_t cpus_per_core = t.smt ? 2 : 1;
  // Cache topology (0x8000001D) and processor topology (0x8000001E) come from
  // the host. Insert first: later references into `entries` must stay valid.
  CpuidRegs host_topo = cpuid(0x8000001e, 0);
  {
    auto& topo = insert_or_get(entries, 0x8000001e, 0, 0);
    topo.eax = host_topo.eax;
    topo.ebx = host_topo.ebx;
    topo.ecx = host_topo.ecx;
    topo.edx = host_topo.edx;
  }
  for (uint32_t sub = 0; sub < 16; ++sub) {
    CpuidRegs r = cpuid(0x8000001d, sub);
    if ((r.eax & 0x1f) == 0) break;  // cache type 0: no more caches
    auto& e = insert_or_get(entries, 0x8000001d, sub, kSignificantIndex);
    e.eax = r.eax;
    e.ebx = r.ebx;
    e.ecx = r.ecx;
    e.edx = r.edx;
    e.flags = kSignificantIndex;
  }
  // IA32_ARCH_CAPABILITIES does not exist on AMD; KVM advertises it anyway.
  set_bit(require(entries, 0x7, 0).edx, 29, false);
  // TopologyExtensions: the guest may use 0x8000001D/E.
  set_bit(require(entries, 0x80000001, 0).ecx, 22, true);
  // 0x80000008 ECX: APIC ID size 7 bits (up to 128 threads), NC = threads - 1.
  auto& leaf88 = require(entries, 0x80000008, 0);
  set_field(leaf88.ecx, 12, 15, 7);
  set_field(leaf88.ecx, 0, 7, t.cpu_count - 1u);
  for (auto& e : entries) {
    if (e.function != 0x8000001d) continue;
    uint32_t level = get_field(e.eax, 5, 7);
    if (level == 1 || level == 2) set_field(e.eax, 14, 25, cpus_per_core - 1);
    if (level == 3) set_field(e.eax, 14, 25, t.cpu_count - 1u);
  }
  // 0x8000001E: extended APIC ID, compute unit (core) ID, threads per unit, one node.
  auto& topo = require(entries, 0x8000001e, 0);
  topo.eax = t.cpu_index;
  set_field(topo.ebx, 0, 7, t.cpu_index / cpus_per_core);
  set_field(topo.ebx, 8, 15, cpus_per_core - 1);
  set_field(topo.ecx, 8, 10, 0);
  set_field(topo.ecx, 0, 7, 0);
  set_brand_string(entries, "AMD EPYC");
}

}  // namespace

CpuidRegs host_cpuid(uint32_t leaf, uint32_t subleaf) {
  CpuidRegs r;
  __cpuid_count(leaf, subleaf, r.eax, r.ebx, r.ecx, r.edx);
  return r;
}

kvm_cpuid_entry2* find_cpuid(CpuidEntries& entries, uint32_t leaf, uint32_t subleaf) {
  for (auto& e : entries) {
    if (e.function != leaf) continue;
    if ((e.flags & kSignificantIndex) && e.index != subleaf) continue;
    return &e;
  }
  return nullptr;
}

const kvm_cpuid_entry2* find_cpuid(const CpuidEntries& entries, uint32_t leaf, uint32_t subleaf) {
  return find_cpuid(const_cast<CpuidEntries&>(entries), leaf, subleaf);
}

namespace {
CpuVendor vendor_from(uint32_t ebx, uint32_t ecx, uint32_t edx) {
  char id[13] = {};
  std::memcpy(id, &ebx, 4);
  std::memcpy(id + 4, &edx, 4);
  std::memcpy(id + 8, &ecx, 4);
  if (std::strcmp(id, "GenuineIntel") == 0) return CpuVendor::kIntel;
  if (std::strcmp(id, "AuthenticAMD") == 0) return CpuVendor::kAmd;
  return CpuVendor::kOther;
}
}  // namespace

CpuVendor cpuid_vendor(const CpuidEntries& entries) {
  const kvm_cpuid_entry2* e = find_cpuid(entries, 0, 0);
  return e ? vendor_from(e->ebx, e->ecx, e->edx) : CpuVendor::kOther;
}

CpuVendor host_vendor(const HostCpuid& cpuid) {
  CpuidRegs r = cpuid(0, 0);
  return vendor_from(r.ebx, r.ecx, r.edx);
}

std::string intel_brand_string(const std::string& host) {
  const std::string base = "Intel(R) Xeon(R) Processor";
  for (const char* unit : {"THz", "GHz", "MHz"}) {
    size_t pos = host.find(unit);
    if (pos == std::string::npos) continue;
    size_t start = pos;
    while (start > 0 && (std::isdigit(static_cast<unsigned char>(host[start - 1])) || host[start - 1] == '.')) {
      --start;
    }
    if (start == pos || start == 0 || host[start - 1] != ' ') break;
    return base + " @ " + host.substr(start, pos + 3 - start);
  }
  return base;
}

void set_brand_string(CpuidEntries& entries, const std::string& brand) {
  char buf[48] = {};
  std::memcpy(buf, brand.data(), std::min<size_t>(brand.size(), 47));
  for (uint32_t i = 0; i < 3; ++i) {
    kvm_cpuid_entry2* e = find_cpuid(entries, 0x80000002 + i, 0);
    if (!e) continue;
    std::memcpy(&e->eax, buf + i * 16 + 0, 4);
    std::memcpy(&e->ebx, buf + i * 16 + 4, 4);
    std::memcpy(&e->ecx, buf + i * 16 + 8, 4);
    std::memcpy(&e->edx, buf + i * 16 + 12, 4);
  }
}

void normalize_cpuid(CpuidEntries& entries, const CpuTopology& t, const HostCpuid& cpuid) {
  if (t.cpu_count == 0 || t.cpu_index >= t.cpu_count) {
    throw common::Error("normalize CPUID: vCPU index " + std::to_string(t.cpu_index) + " of " +
                        std::to_string(t.cpu_count));
  }
  // Vendor: always the host's, whatever KVM or a template said.
  auto& leaf0 = require(entries, 0, 0);
  CpuidRegs host0 = cpuid(0, 0);
  leaf0.ebx = host0.ebx;
  leaf0.ecx = host0.ecx;
  leaf0.edx = host0.edx;

  auto& leaf1 = require(entries, 1, 0);
  set_field(leaf1.ebx, 8, 15, 8);  // CLFLUSH line size in 8-byte units: 64 bytes
  set_field(leaf1.ebx, 16, 23, next_power_of_two(t.cpu_count));
  set_field(leaf1.ebx, 24, 31, t.cpu_index);  // initial APIC ID
  set_bit(leaf1.ecx, 15, false);  // PDCM: no IA32_PERF_CAPABILITIES
  set_bit(leaf1.ecx, 24, true);   // TSC-deadline timer (KVM's LAPIC emulates it)
  set_bit(leaf1.ecx, 31, true);   // running under a hypervisor
  set_bit(leaf1.edx, 28, t.cpu_count > 1);  // HTT: EBX[23:16] is valid

  update_extended_topology(entries, 0xb, t);

  // L1/L2/L3 cache descriptions straight from the host.
  for (uint32_t leaf : {0x80000005u, 0x80000006u}) {
    auto& e = require(entries, leaf, 0);
    CpuidRegs r = cpuid(leaf, 0);
    e.eax = r.eax;
    e.ebx = r.ebx;
    e.ecx = r.ecx;
    e.edx = r.edx;
    if (leaf == 0x80000006) e.edx &= ~0x00030000u;  // bits 17:16 are reserved
  }

  switch (cpuid_vendor(entries)) {
    case CpuVendor::kIntel:
      normalize_intel(entries, t, cpuid);
      break;
    case CpuVendor::kAmd:
      normalize_amd(entries, t, cpuid);
      break;
    case CpuVendor::kOther:
      break;
  }
}

}  // namespace ember::vmm::arch
