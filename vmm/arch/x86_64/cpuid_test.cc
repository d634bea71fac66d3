// CPUID normalisation and CPU templates on synthetic KVM CPUID tables, with a
// fake host CPUID so results do not depend on the machine running the test.
#include <gtest/gtest.h>

#include <cstring>
#include <map>

#include "vmm/arch/x86_64/cpu_templates.h"
#include "vmm/arch/x86_64/cpuid.h"
#include "vmm/common/error.h"

namespace ember::vmm::arch {
namespace {

kvm_cpuid_entry2 entry(uint32_t leaf, uint32_t sub, uint32_t flags, uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
  kvm_cpuid_entry2 e{};
  e.function = leaf;
  e.index = sub;
  e.flags = flags;
  e.eax = a;
  e.ebx = b;
  e.ecx = c;
  e.edx = d;
  return e;
}

constexpr uint32_t kIdx = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;

void vendor_regs(const char* id, uint32_t& b, uint32_t& c, uint32_t& d) {
  std::memcpy(&b, id, 4);
  std::memcpy(&d, id + 4, 4);
  std::memcpy(&c, id + 8, 4);
}

CpuidEntries table(const char* vendor) {
  uint32_t b, c, d;
  vendor_regs(vendor, b, c, d);
  return {
      entry(0, 0, 0, 0x1f, b, c, d),
      entry(1, 0, 0, 0x000306f2, 0x00000800, 0x0000a000, 0x178bfbff),
      entry(4, 0, kIdx, 0x00000121, 0, 0, 0),
      entry(4, 1, kIdx, 0x00000163, 0, 0, 0),
      entry(6, 0, 0, 0x6, 0, 0x8, 0),
      entry(7, 0, kIdx, 0, 0xffffffff, 0xffffffff, 0xffffffff),
      entry(0xa, 0, 0, 0x7, 1, 2, 3),
      entry(0xb, 0, kIdx, 9, 9, 9, 9),
      entry(0xd, 0, kIdx, 0xffffffff, 0, 0, 0),
      entry(0xd, 1, kIdx, 0xffffffff, 0, 0, 0),
      entry(0x80000001, 0, 0, 0, 0, 0xffffffff, 0xffffffff),
      entry(0x80000002, 0, 0, 0, 0, 0, 0),
      entry(0x80000003, 0, 0, 0, 0, 0, 0),
      entry(0x80000004, 0, 0, 0, 0, 0, 0),
      entry(0x80000005, 0, 0, 0, 0, 0, 0),
      entry(0x80000006, 0, 0, 0, 0, 0, 0),
      entry(0x80000008, 0, 0, 0x3030, 0xffffffff, 0, 0),
  };
}

// A fake host: a vendor, a brand string, cache leaves and AMD topology.
HostCpuid fake_host(const char* vendor, const char* brand) {
  return [vendor, brand](uint32_t leaf, uint32_t sub) {
    CpuidRegs r;
    if (leaf == 0) {
      r.eax = 0x1f;
      vendor_regs(vendor, r.ebx, r.ecx, r.edx);
    } else if (leaf >= 0x80000002 && leaf <= 0x80000004) {
      char buf[48] = {};
      std::strncpy(buf, brand, 47);
      const char* p = buf + (leaf - 0x80000002) * 16;
      std::memcpy(&r.eax, p, 4);
      std::memcpy(&r.ebx, p + 4, 4);
      std::memcpy(&r.ecx, p + 8, 4);
      std::memcpy(&r.edx, p + 12, 4);
    } else if (leaf == 0x80000005) {
      r = {0x11, 0x22, 0x33, 0x44};
    } else if (leaf == 0x80000006) {
      r = {0x55, 0x66, 0x77, 0x00030088};
    } else if (leaf == 0x8000001e) {
      r = {0xaa, 0xbb00, 0xcc, 0};
    } else if (leaf == 0x8000001d && sub < 3) {
      r = {(sub + 1) << 5 | 1, 0x3f, 0x3f, 0};  // levels 1..3, data cache
    }
    return r;
  };
}

std::string brand_of(const CpuidEntries& t) {
  char buf[49] = {};
  for (uint32_t i = 0; i < 3; ++i) {
    const auto* e = find_cpuid(t, 0x80000002 + i, 0);
    std::memcpy(buf + i * 16, &e->eax, 4);
    std::memcpy(buf + i * 16 + 4, &e->ebx, 4);
    std::memcpy(buf + i * 16 + 8, &e->ecx, 4);
    std::memcpy(buf + i * 16 + 12, &e->edx, 4);
  }
  return buf;
}

TEST(CpuidNormalize, Leaf1CarriesApicIdClflushAndHypervisorBit) {
  auto t = table("GenuineIntel");
  normalize_cpuid(t, {2, 4, false}, fake_host("GenuineIntel", "Intel(R) Xeon(R) CPU @ 2.50GHz"));
  const auto* l1 = find_cpuid(t, 1, 0);
  EXPECT_EQ(l1->ebx >> 24, 2u) << "initial APIC ID";
  EXPECT_EQ((l1->ebx >> 16) & 0xff, 4u) << "addressable logical processors";
  EXPECT_EQ((l1->ebx >> 8) & 0xff, 8u) << "CLFLUSH line size (x8 bytes)";
  EXPECT_TRUE(l1->ecx & (1u << 31)) << "hypervisor";
  EXPECT_TRUE(l1->ecx & (1u << 24)) << "TSC deadline";
  EXPECT_FALSE(l1->ecx & (1u << 15)) << "PDCM";
  EXPECT_TRUE(l1->edx & (1u << 28)) << "HTT with several vCPUs";
}

TEST(CpuidNormalize, SingleVcpuHasNoHtt) {
  auto t = table("GenuineIntel");
  normalize_cpuid(t, {0, 1, false}, fake_host("GenuineIntel", ""));
  EXPECT_FALSE(find_cpuid(t, 1, 0)->edx & (1u << 28));
  EXPECT_EQ((find_cpuid(t, 1, 0)->ebx >> 16) & 0xff, 1u);
}

TEST(CpuidNormalize, ExtendedTopologyHasThreadAndCoreLevels) {
  auto t = table("GenuineIntel");
  normalize_cpuid(t, {3, 4, false}, fake_host("GenuineIntel", ""));
  const auto* l0 = find_cpuid(t, 0xb, 0);
  const auto* l1 = find_cpuid(t, 0xb, 1);
  ASSERT_TRUE(l0 && l1);
  EXPECT_EQ(l0->eax, 0u);
  EXPECT_EQ(l0->ebx, 1u);
  EXPECT_EQ(l0->ecx, 0x100u);
  EXPECT_EQ(l0->edx, 3u);
  EXPECT_EQ(l1->eax, 5u);
  EXPECT_EQ(l1->ebx, 4u);
  EXPECT_EQ(l1->ecx, 0x201u);
  EXPECT_EQ(l1->edx, 3u);
}

TEST(CpuidNormalize, SmtPutsTwoThreadsInACore) {
  auto t = table("GenuineIntel");
  normalize_cpuid(t, {1, 2, true}, fake_host("GenuineIntel", ""));
  EXPECT_EQ(find_cpuid(t, 0xb, 0)->eax, 1u);
  EXPECT_EQ(find_cpuid(t, 0xb, 0)->ebx, 2u);
  // Leaf 4: L1 shared by the core's 2 threads, one core in the package.
  EXPECT_EQ((find_cpuid(t, 4, 0)->eax >> 14) & 0xfff, 1u);
  EXPECT_EQ(find_cpuid(t, 4, 0)->eax >> 26, 0u);
}

TEST(CpuidNormalize, IntelSpecificLeaves) {
  auto t = table("GenuineIntel");
  normalize_cpuid(t, {0, 2, false}, fake_host("GenuineIntel", "Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz"));
  EXPECT_EQ(find_cpuid(t, 6, 0)->eax & 2, 0u) << "no turbo";
  EXPECT_EQ(find_cpuid(t, 6, 0)->ecx & 8, 0u);
  EXPECT_EQ(find_cpuid(t, 7, 0)->ecx & 0x20, 0u) << "no WAITPKG";
  const auto* a = find_cpuid(t, 0xa, 0);
  EXPECT_EQ(a->eax | a->ebx | a->ecx | a->edx, 0u) << "no PMU";
  EXPECT_EQ(brand_of(t), "Intel(R) Xeon(R) Processor @ 2.50GHz");
  // L3 (level 3) is shared by both vCPUs.
  EXPECT_EQ((find_cpuid(t, 4, 1)->eax >> 14) & 0xfff, 1u);
  // Cache leaves come from the host; reserved bits of 0x80000006 EDX cleared.
  EXPECT_EQ(find_cpuid(t, 0x80000005, 0)->eax, 0x11u);
  EXPECT_EQ(find_cpuid(t, 0x80000006, 0)->edx, 0x88u);
}

TEST(CpuidNormalize, AmdTopologyAndBrand) {
  auto t = table("AuthenticAMD");
  normalize_cpuid(t, {3, 4, false}, fake_host("AuthenticAMD", "AMD EPYC 7R13 Processor"));
  EXPECT_EQ(find_cpuid(t, 7, 0)->edx & (1u << 29), 0u) << "no ARCH_CAPABILITIES on AMD";
  EXPECT_TRUE(find_cpuid(t, 0x80000001, 0)->ecx & (1u << 22)) << "TopologyExtensions";
  EXPECT_EQ(find_cpuid(t, 0x80000008, 0)->ecx & 0xff, 3u) << "NC = threads - 1";
  EXPECT_EQ((find_cpuid(t, 0x80000008, 0)->ecx >> 12) & 0xf, 7u);
  const auto* topo = find_cpuid(t, 0x8000001e, 0);
  ASSERT_TRUE(topo);
  EXPECT_EQ(topo->eax, 3u) << "extended APIC ID";
  EXPECT_EQ(topo->ebx & 0xff, 3u) << "compute unit";
  EXPECT_EQ((topo->ebx >> 8) & 0xff, 0u);
  const auto* l3 = find_cpuid(t, 0x8000001d, 2);
  ASSERT_TRUE(l3);
  EXPECT_EQ((l3->eax >> 14) & 0xfff, 3u) << "L3 shared by all 4 vCPUs";
  EXPECT_EQ(brand_of(t), "AMD EPYC");
}

TEST(CpuidNormalize, VendorComesFromTheHost) {
  auto t = table("GenuineIntel");
  normalize_cpuid(t, {0, 1, false}, fake_host("AuthenticAMD", ""));
  EXPECT_EQ(cpuid_vendor(t), CpuVendor::kAmd);
}

TEST(CpuidNormalize, MissingLeafIsAnError) {
  CpuidEntries t = {entry(0, 0, 0, 1, 0, 0, 0)};
  EXPECT_THROW(normalize_cpuid(t, {0, 1, false}, fake_host("GenuineIntel", "")), common::Error);
}

TEST(CpuidNormalize, IndexOutOfRangeIsAnError) {
  auto t = table("GenuineIntel");
  EXPECT_THROW(normalize_cpuid(t, {4, 4, false}, fake_host("GenuineIntel", "")), common::Error);
}

TEST(IntelBrand, KeepsTheHostFrequency) {
  EXPECT_EQ(intel_brand_string("Intel(R) Xeon(R) CPU E5-2686 v4 @ 2.30GHz"), "Intel(R) Xeon(R) Processor @ 2.30GHz");
  EXPECT_EQ(intel_brand_string("Genuine Intel(R) CPU 0000%@"), "Intel(R) Xeon(R) Processor");
}

TEST(CpuTemplates, T2PinsFamilyModelAndMasksFeatures) {
  auto t = table("GenuineIntel");
  apply_cpuid_template(t, static_cpu_template(CpuTemplate::kT2));
  const auto* l1 = find_cpuid(t, 1, 0);
  EXPECT_EQ(l1->eax & 0x0fff3fff, 0x000306f2u);
  EXPECT_EQ(l1->edx & 0xe8641080, 0x00001080u);
  const auto* l7 = find_cpuid(t, 7, 0);
  EXPECT_EQ(l7->ebx & 0xffefda14, 0x200u);
  EXPECT_EQ(l7->ebx | 0xffefda14, 0xffffffffu) << "bits outside the mask are kept";
  EXPECT_EQ(find_cpuid(t, 0xd, 1)->eax & 0xe, 0u);
}

TEST(CpuTemplates, EveryStaticTemplateAppliesToAFullTable) {
  for (auto tmpl : {CpuTemplate::kC3, CpuTemplate::kT2, CpuTemplate::kT2S, CpuTemplate::kT2CL, CpuTemplate::kT2A}) {
    auto t = table("GenuineIntel");
    EXPECT_NO_THROW(apply_cpuid_template(t, static_cpu_template(tmpl))) << cpu_template_name(tmpl);
  }
  EXPECT_THROW(static_cpu_template(CpuTemplate::kNone), common::Error);
}

TEST(CpuTemplates, MissingLeafIsAnError) {
  CustomCpuTemplate custom;
  custom.cpuid_modifiers.push_back({0x12345, 0, 0, {{CpuidRegisterModifier::Register::kEax, 1, 1}}});
  auto t = table("GenuineIntel");
  try {
    apply_cpuid_template(t, custom);
    FAIL();
  } catch (const common::Error& e) {
    EXPECT_NE(std::string(e.what()).find("0x12345"), std::string::npos) << e.what();
  }
}

TEST(CpuTemplates, MsrModifiersReplaceMaskedBits) {
  std::vector<MsrEntry> msrs = {{kMsrIa32ArchCapabilities, 0xffffffffffffffffULL}};
  apply_msr_template(msrs, static_cpu_template(CpuTemplate::kT2CL));
  EXPECT_EQ(msrs[0].data, ~0xffffffffe2f51e00ULL);
  std::vector<MsrEntry> s = {{kMsrIa32ArchCapabilities, 0}};
  apply_msr_template(s, static_cpu_template(CpuTemplate::kT2S));
  EXPECT_EQ(s[0].data, 0x0c0a0c4cULL);
  std::vector<MsrEntry> none;
  EXPECT_THROW(apply_msr_template(none, static_cpu_template(CpuTemplate::kT2S)), common::Error);
}

TEST(CpuTemplates, HostChecksNameVendorAndModel) {
  EXPECT_THROW(check_static_template_host(CpuTemplate::kT2, CpuVendor::kAmd, 0x00050657), common::Error);
  EXPECT_NO_THROW(check_static_template_host(CpuTemplate::kT2, CpuVendor::kIntel, 0x00050657));
  EXPECT_THROW(check_static_template_host(CpuTemplate::kT2S, CpuVendor::kIntel, 0x000606a6), common::Error);
  EXPECT_NO_THROW(check_static_template_host(CpuTemplate::kT2A, CpuVendor::kAmd, 0x00a00f11));
  EXPECT_THROW(check_static_template_host(CpuTemplate::kT2A, CpuVendor::kAmd, 0x00a10f11), common::Error);
  EXPECT_NO_THROW(check_static_template_host(CpuTemplate::kNone, CpuVendor::kOther, 0));
}

TEST(CpuTemplates, CustomTemplateWinsOverStatic) {
  VmResources r;
  EXPECT_FALSE(effective_cpu_template(r));
  r.machine.cpu_template = CpuTemplate::kC3;
  ASSERT_TRUE(effective_cpu_template(r));
  EXPECT_EQ(effective_cpu_template(r)->cpuid_modifiers.size(), static_cpu_template(CpuTemplate::kC3).cpuid_modifiers.size());
  r.cpu_config = CustomCpuTemplate{};
  EXPECT_TRUE(effective_cpu_template(r)->cpuid_modifiers.empty());
}

}  // namespace
}  // namespace ember::vmm::arch
