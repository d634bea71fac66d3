// Boot timer (reference/firecracker-compat.md §10): an MMIO page at
// 0xC0000000; a 1-byte write of 123 at offset 0 logs how long the guest took
// to boot since the VM build started, wall clock and VMM CPU time.
#pragma once

#include <cstdint>

#include "vmm/devices/bus.h"
#include "vmm/logger/logger.h"

namespace ember::vmm {

struct BootTimestamp {
  uint64_t wall_us = 0;  // CLOCK_MONOTONIC
  uint64_t cpu_us = 0;   // CLOCK_PROCESS_CPUTIME_ID
  static BootTimestamp now();
};

class BootTimer : public BusDevice {
 public:
  static constexpr uint8_t kMagicBootComplete = 123;

  BootTimer(BootTimestamp start, Logger& logger) : start_(start), logger_(logger) {}

  void read(uint64_t, std::span<uint8_t>) override {}
  void write(uint64_t offset, std::span<const uint8_t> data) override;

 private:
  BootTimestamp start_;
  Logger& logger_;
};

}  // namespace ember::vmm
