// Whether this host's KVM can run a real Linux guest: `ember-kvm-check`
// (vmm/kvm_check) boots a payload guest that executes SSE and exits 0 only
// if that works. It decides the "auto" backend (ember where KVM works, qemu
// elsewhere) and QEMU's accelerator. Machines with a software /dev/kvm (this
// project's CI) answer no.
#pragma once

#include <string>

#include "shim/config/runtime_config.h"
#include "shim/log/shim_log.h"

namespace ember::shim {

// The checker: `config.kvm_check`, else ember-kvm-check beside this
// executable, else in PATH; "" when there is none.
std::string find_kvm_check(const RuntimeConfig& config);

// Runs the checker (60 s limit). false without /dev/kvm or a checker. The
// answer is cached for the life of the process.
bool kvm_runs_linux_guests(const RuntimeConfig& config, ShimLog& log);

}  // namespace ember::shim
