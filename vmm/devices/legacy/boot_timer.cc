#include "vmm/devices/legacy/boot_timer.h"

#include <time.h>

#include <cstdio>

namespace ember::vmm {
namespace {
uint64_t clock_us(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}
}  // namespace

BootTimestamp BootTimestamp::now() { return {clock_us(CLOCK_MONOTONIC), clock_us(CLOCK_PROCESS_CPUTIME_ID)}; }

void BootTimer::write(uint64_t offset, std::span<const uint8_t> data) {
  if (offset != 0 || data.size() != 1 || data[0] != kMagicBootComplete) return;
  BootTimestamp now = BootTimestamp::now();
  uint64_t wall = now.wall_us - start_.wall_us;
  uint64_t cpu = now.cpu_us - start_.cpu_us;
  char line[128];
  std::snprintf(line, sizeof line, "Guest-boot-time = %6llu us %llu ms, %6llu CPU us %llu CPU ms",
                static_cast<unsigned long long>(wall), static_cast<unsigned long long>(wall / 1000),
                static_cast<unsigned long long>(cpu), static_cast<unsigned long long>(cpu / 1000));
  LOG_INFO(logger_, line);
}

}  // namespace ember::vmm
