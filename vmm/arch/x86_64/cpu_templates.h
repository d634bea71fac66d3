// CPU templates: CPUID and MSR masks that make a guest see a fixed CPU model
// (Firecracker's static templates C3, T2, T2S, T2CL for Intel and T2A for
// AMD, docs/cpu_templates/cpu-templates.md) or a user's custom template
// (PUT /cpu-config). A modifier replaces the bits under `mask` with `value`.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "vmm/arch/x86_64/cpuid.h"
#include "vmm/arch/x86_64/msr.h"
#include "vmm/vmm_config/vmm_config.h"

namespace ember::vmm::arch {

// The modifiers of a static template; throws for CpuTemplate::kNone.
CustomCpuTemplate static_cpu_template(CpuTemplate tmpl);
const char* cpu_template_name(CpuTemplate tmpl);

// Host checks a static template makes: vendor (Intel templates on Intel, T2A on
// AMD) and CPU model (family/model/stepping from CPUID leaf 1 EAX). Throws
// common::Error naming the template and the mismatch.
void check_static_template_host(CpuTemplate tmpl, CpuVendor vendor, uint32_t leaf1_eax);

// The template a VM uses: the custom one if set, else the static one, else none.
std::optional<CustomCpuTemplate> effective_cpu_template(const VmResources& resources);

// Applies the CPUID modifiers; a modifier for a leaf KVM does not report is an
// error (the guest could not see the feature anyway).
void apply_cpuid_template(CpuidEntries& entries, const CustomCpuTemplate& tmpl);
// Applies the MSR modifiers to `msrs` (current values read from KVM); every
// modified MSR must be present.
void apply_msr_template(std::vector<MsrEntry>& msrs, const CustomCpuTemplate& tmpl);
// MSR indexes a template modifies (to read their current values first).
std::vector<uint32_t> template_msr_indexes(const CustomCpuTemplate& tmpl);

}  // namespace ember::vmm::arch
