// What Firecracker's tooling requires of a metrics line, written down once for
// the tests that check ember's lines: Metrics' unit test and the API test that
// reads the metrics file of a running ember-vmm.
#pragma once

#include <array>

namespace ember::vmm::testing {

// The groups upstream's tests/host_tools/fcmetrics.py requires on every line.
inline constexpr auto kFirecrackerMetricGroups = std::to_array<const char*>({
    "api_server",
    "balloon",
    "block",
    "deprecated_api",
    "get_api_requests",
    "i8042",
    "latencies_us",
    "logger",
    "mmds",
    "net",
    "patch_api_requests",
    "put_api_requests",
    "seccomp",
    "vcpu",
    "vmm",
    "uart",
    "signals",
    "vsock",
    "entropy",
    "interrupts",
    "pmem",
    "memory_hotplug",
});

}  // namespace ember::vmm::testing
