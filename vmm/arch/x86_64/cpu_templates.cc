#include "vmm/arch/x86_64/cpu_templates.h"

#include <cstdio>

#include "vmm/common/error.h"

namespace ember::vmm::arch {
namespace {

using Reg = CpuidRegisterModifier::Register;
constexpr uint32_t kIndexed = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;

struct Mask {
  uint32_t leaf, subleaf, flags;
  Reg reg;
  uint32_t mask, value;
};

CustomCpuTemplate from_masks(const std::vector<Mask>& masks) {
  CustomCpuTemplate t;
  for (const Mask& m : masks) {
    CpuidLeafModifier* leaf = nullptr;
    for (auto& l : t.cpuid_modifiers) {
      if (l.leaf == m.leaf && l.subleaf == m.subleaf) leaf = &l;
    }
    if (!leaf) {
      t.cpuid_modifiers.push_back({m.leaf, m.subleaf, m.flags, {}});
      leaf = &t.cpuid_modifiers.back();
    }
    leaf->modifiers.push_back({m.reg, m.mask, m.value});
  }
  return t;
}

// The T2 family (an AWS T2 instance: Haswell-class Xeon, family 6 model 0x3f)
// as T2, T2S, T2CL and T2A all show it in leaves 1, 7 and 0xD. Leaf 1 pins
// family/model/stepping 0x306f2 and hides DTES64, MONITOR, DS-CPL, VMX, SMX,
// EIST, TM2, SDBG, xTPR, PDCM, DCA, OSXSAVE-era extras; EDX keeps MCE/MTRR on
// and hides PSN, DS, ACPI, SS, TM, PBE. Leaf 7 keeps only the Haswell feature
// set (no AVX-512, SHA, MPX, SGX, RTM, CLWB, PT, ...), leaf 0xD hides
// MPX/AVX-512 state components. Each member adds its own extended leaves
// (0x8000000x), which differ with the host it runs on.
CustomCpuTemplate t2_family(std::initializer_list<Mask> extended_leaves) {
  std::vector<Mask> masks = {
      {0x1, 0, 0, Reg::kEax, 0x0fff3fff, 0x000306f2},
      {0x1, 0, 0, Reg::kEcx, 0x0004cdfc, 0},
      {0x1, 0, 0, Reg::kEdx, 0xe8641080, 0x00001080},
      {0x7, 0, kIndexed, Reg::kEbx, 0xffefda14, 0x00000200},
      {0x7, 0, kIndexed, Reg::kEcx, 0x40415f5e, 0},
      {0x7, 0, kIndexed, Reg::kEdx, 0x0000011c, 0},
      {0xd, 0, kIndexed, Reg::kEax, 0x000002f8, 0},
      {0xd, 1, kIndexed, Reg::kEax, 0x0000000e, 0},
  };
  masks.insert(masks.end(), extended_leaves);
  return from_masks(masks);
}

// T2: 0x80000001 hides PREFETCHW/LZCNT-era AMD bits and 1 GiB pages,
// 0x80000008 hides WBNOINVD.
CustomCpuTemplate t2_cpuid() {
  return t2_family({
      {0x80000001, 0, 0, Reg::kEcx, 0x20000100, 0},
      {0x80000001, 0, 0, Reg::kEdx, 0x04000000, 0},
      {0x80000008, 0, 0, Reg::kEbx, 0x00000200, 0},
  });
}

// C3: an AWS C3 instance (Ivy Bridge Xeon, 0x306e4): like T2 but also without
// FMA, MOVBE, BMI1/2, AVX2, INVPCID and friends.
CustomCpuTemplate c3() {
  return from_masks({
      {0x1, 0, 0, Reg::kEax, 0x0fff3fff, 0x000306e4},
      {0x1, 0, 0, Reg::kEcx, 0x0040dd3c, 0},
      {0x1, 0, 0, Reg::kEdx, 0xa8641080, 0x00001080},
      {0x7, 0, kIndexed, Reg::kEbx, 0xffafdd3c, 0},
      {0x7, 0, kIndexed, Reg::kEcx, 0x4041481e, 0},
      {0x7, 0, kIndexed, Reg::kEdx, 0x0000000c, 0},
      {0xd, 0, kIndexed, Reg::kEax, 0x000002f8, 0},
      {0xd, 1, kIndexed, Reg::kEax, 0x0000000e, 0},
      {0x80000001, 0, 0, Reg::kEcx, 0x00000120, 0},
      {0x80000001, 0, 0, Reg::kEdx, 0x04000000, 0},
  });
}

CustomCpuTemplate t2s() {
  CustomCpuTemplate t = t2_cpuid();
  // IA32_ARCH_CAPABILITIES pinned to what the most vulnerable supported host
  // reports, so a guest can move between hosts: RSBA, SKIP_L1DFL_VMENTRY,
  // IF_PSCHANGE_MC_NO, MISC_PACKAGE_CTLS, ENERGY_FILTERING_CTL, FB_CLEAR,
  // RRSBA, GDS_NO, RFDS_NO (bits 2,3,6,10,11,17,19,26,27).
  t.msr_modifiers.push_back({kMsrIa32ArchCapabilities, ~0ULL, 0x0c0a0c4cULL});
  return t;
}

CustomCpuTemplate t2cl() {
  CustomCpuTemplate t = t2_family({
      {0x80000001, 0, 0, Reg::kEcx, 0x200001c0, 0},
      {0x80000001, 0, 0, Reg::kEdx, 0x07c00000, 0},
      {0x80000008, 0, 0, Reg::kEbx, 0x00000200, 0},
  });
  // IA32_ARCH_CAPABILITIES: pass through the mitigation bits KVM can pass
  // through, clear the rest (MCU/package controls, DOITM, ...).
  t.msr_modifiers.push_back({kMsrIa32ArchCapabilities, 0xffffffffe2f51e00ULL, 0});
  return t;
}

// T2A: an AMD Milan host made to look like the T2 family to the guest.
CustomCpuTemplate t2a() {
  return t2_family({
      {0x80000001, 0, 0, Reg::kEcx, 0x200001c4, 0},
      {0x80000001, 0, 0, Reg::kEdx, 0x06400000, 0},
      {0x80000008, 0, 0, Reg::kEbx, 0x001c0205, 0x001c0004},
  });
}

struct Fms {
  uint32_t ext_family, ext_model, family, model, stepping;
  bool operator==(const Fms&) const = default;
};
Fms fms_of(uint32_t eax) {
  return {(eax >> 20) & 0xff, (eax >> 16) & 0xf, (eax >> 8) & 0xf, (eax >> 4) & 0xf, eax & 0xf};
}
constexpr Fms kSkylake{0x0, 0x5, 0x6, 0x5, 0x4};
constexpr Fms kCascadeLake{0x0, 0x5, 0x6, 0x5, 0x7};
constexpr Fms kIceLake{0x0, 0x6, 0x6, 0xa, 0x6};
constexpr Fms kMilan{0xa, 0x0, 0xf, 0x1, 0x1};

uint32_t* register_of(kvm_cpuid_entry2& e, Reg reg) {
  switch (reg) {
    case Reg::kEax:
      return &e.eax;
    case Reg::kEbx:
      return &e.ebx;
    case Reg::kEcx:
      return &e.ecx;
    case Reg::kEdx:
      return &e.edx;
  }
  return &e.eax;
}

}  // namespace

const char* cpu_template_name(CpuTemplate tmpl) {
  switch (tmpl) {
    case CpuTemplate::kC3:
      return "C3";
    case CpuTemplate::kT2:
      return "T2";
    case CpuTemplate::kT2S:
      return "T2S";
    case CpuTemplate::kT2CL:
      return "T2CL";
    case CpuTemplate::kT2A:
      return "T2A";
    case CpuTemplate::kNone:
      break;
  }
  return "None";
}

CustomCpuTemplate static_cpu_template(CpuTemplate tmpl) {
  switch (tmpl) {
    case CpuTemplate::kC3:
      return c3();
    case CpuTemplate::kT2:
      return t2_cpuid();
    case CpuTemplate::kT2S:
      return t2s();
    case CpuTemplate::kT2CL:
      return t2cl();
    case CpuTemplate::kT2A:
      return t2a();
    case CpuTemplate::kNone:
      break;
  }
  throw common::Error("CPU template None has no modifiers");
}

void check_static_template_host(CpuTemplate tmpl, CpuVendor vendor, uint32_t leaf1_eax) {
  if (tmpl == CpuTemplate::kNone) return;
  std::string name = cpu_template_name(tmpl);
  CpuVendor wanted = tmpl == CpuTemplate::kT2A ? CpuVendor::kAmd : CpuVendor::kIntel;
  if (vendor != wanted) {
    throw common::Error("CPU template " + name + " needs an " +
                        (wanted == CpuVendor::kAmd ? "AMD" : "Intel") + " host CPU (CPU vendor mismatched)");
  }
  std::vector<Fms> models;
  switch (tmpl) {
    case CpuTemplate::kC3:
    case CpuTemplate::kT2:
      models = {kSkylake, kCascadeLake, kIceLake};
      break;
    case CpuTemplate::kT2S:
      models = {kSkylake, kCascadeLake};
      break;
    case CpuTemplate::kT2CL:
      models = {kCascadeLake, kIceLake};
      break;
    case CpuTemplate::kT2A:
      models = {kMilan};
      break;
    case CpuTemplate::kNone:
      break;
  }
  Fms host = fms_of(leaf1_eax);
  for (const Fms& m : models) {
    if (m == host) return;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%#x", leaf1_eax);
  throw common::Error("CPU template " + name + " is not supported on this CPU model (CPUID.1:EAX " + buf + ")");
}

std::optional<CustomCpuTemplate> effective_cpu_template(const VmResources& resources) {
  if (resources.cpu_config) return resources.cpu_config;
  if (resources.machine.cpu_template != CpuTemplate::kNone) {
    return static_cpu_template(resources.machine.cpu_template);
  }
  return std::nullopt;
}

void apply_cpuid_template(CpuidEntries& entries, const CustomCpuTemplate& tmpl) {
  for (const auto& leaf : tmpl.cpuid_modifiers) {
    kvm_cpuid_entry2* e = nullptr;
    for (auto& candidate : entries) {
      if (candidate.function == leaf.leaf && candidate.index == leaf.subleaf) e = &candidate;
    }
    if (!e) {
      char buf[80];
      std::snprintf(buf, sizeof buf, "CPU template: CPUID leaf %#x subleaf %#x is not supported by KVM",
                    leaf.leaf, leaf.subleaf);
      throw common::Error(buf);
    }
    e->flags = leaf.flags;
    for (const auto& m : leaf.modifiers) {
      uint32_t* reg = register_of(*e, m.reg);
      *reg = (*reg & ~m.mask) | (m.value & m.mask);
    }
  }
}

void apply_msr_template(std::vector<MsrEntry>& msrs, const CustomCpuTemplate& tmpl) {
  for (const auto& m : tmpl.msr_modifiers) {
    MsrEntry* entry = nullptr;
    for (auto& candidate : msrs) {
      if (candidate.index == m.addr) entry = &candidate;
    }
    if (!entry) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "CPU template: MSR %#x is not supported by KVM", m.addr);
      throw common::Error(buf);
    }
    entry->data = (entry->data & ~m.mask) | (m.value & m.mask);
  }
}

std::vector<uint32_t> template_msr_indexes(const CustomCpuTemplate& tmpl) {
  std::vector<uint32_t> out;
  for (const auto& m : tmpl.msr_modifiers) out.push_back(m.addr);
  return out;
}

}  // namespace ember::vmm::arch
