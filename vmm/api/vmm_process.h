// The ember-vmm process when it acts as the `firecracker` binary: command
// line, logger and metrics set-up, the API socket and its thread, the
// optional `--config-file` boot, the VMM thread's event loop (API requests,
// signals, VM exit, periodic metrics), and Firecracker's exit codes and exit
// log lines (reference/firecracker-compat.md §1.4-§1.6).
#pragma once

#include <string>

namespace ember::vmm::api {

// ember's own version, and the version ember reports wherever Firecracker
// reports its own ("Running Firecracker v<x>", GET /version, GET /,
// --version's first line). By default the two are the same; see
// docs/ember-vmm.md.
const char* ember_version();
const char* reported_firecracker_version();

// main() of the Firecracker-compatible mode. Returns the exit code.
int run_vmm_process(int argc, char** argv);

}  // namespace ember::vmm::api
