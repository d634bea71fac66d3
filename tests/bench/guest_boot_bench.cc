// Boot time of the guest image under QEMU microvm: N boots (default 5) of
// vmlinux through PVH, and as the baseline in the same run N boots of the
// bzImage (decompressor + 64-bit entry). Prints every run, the medians and the
// ratio. Boot = QEMU spawn to EMBER-GUEST-READY; cycle = spawn to QEMU's exit
// after the guest rebooted.
//
// usage: guest_boot_bench [runs]     (EMBER_QEMU_ACCEL=kvm|tcg to choose)
// Exit 77 (CTest: skipped) when QEMU or the guest image is missing.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "tests/harness/qemu_guest.h"

namespace {
using namespace std::chrono_literals;
using ember::testing::QemuGuest;
using ember::testing::QemuGuestConfig;

struct Run {
  double boot_ms;
  double cycle_ms;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Returns false (after printing why) when a boot failed.
bool boot_once(const std::filesystem::path& kernel, Run& run) {
  QemuGuestConfig config = QemuGuestConfig::smoke();
  config.kernel = kernel;
  auto start = std::chrono::steady_clock::now();
  QemuGuest guest(config);
  if (!guest.wait_for_line("^EMBER-GUEST-DONE errors=0", 180s)) {
    std::fprintf(stderr, "boot of %s failed:\n%s", kernel.c_str(), guest.describe().c_str());
    return false;
  }
  auto status = guest.wait_for_exit(60s);
  if (!status || *status != 0) {
    std::fprintf(stderr, "guest did not exit cleanly:\n%s", guest.describe().c_str());
    return false;
  }
  run.boot_ms = static_cast<double>(guest.boot_time()->count());
  run.cycle_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return true;
}

bool measure(const char* label, const std::filesystem::path& kernel, int runs, double& boot_median,
             double& cycle_median) {
  std::vector<double> boots, cycles;
  for (int i = 0; i < runs; ++i) {
    Run run{};
    if (!boot_once(kernel, run)) return false;
    std::printf("%-8s run %d: boot %6.0f ms   cycle %6.0f ms\n", label, i + 1, run.boot_ms, run.cycle_ms);
    std::fflush(stdout);
    boots.push_back(run.boot_ms);
    cycles.push_back(run.cycle_ms);
  }
  boot_median = median(boots);
  cycle_median = median(cycles);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  int runs = argc > 1 ? std::atoi(argv[1]) : 5;
  if (runs < 1) {
    std::fprintf(stderr, "usage: %s [runs >= 1]\n", argv[0]);
    return 2;
  }
  if (!ember::testing::have_qemu() || !ember::testing::have_smoke_image()) {
    std::printf("skipped: needs qemu-system-x86_64 and the guest image in %s (build the guest-image target)\n",
                ember::testing::guest_image_dir().c_str());
    return 77;
  }
  auto dir = ember::testing::guest_image_dir();
  std::printf("guest boot benchmark: %d runs each, accelerator %s, %s\n", runs,
              ember::testing::select_accelerator().c_str(), dir.c_str());
  double pvh_boot, pvh_cycle, bz_boot, bz_cycle;
  if (!measure("vmlinux", dir / "vmlinux", runs, pvh_boot, pvh_cycle)) return 1;
  if (!measure("bzImage", dir / "bzImage", runs, bz_boot, bz_cycle)) return 1;
  std::printf("median boot:  vmlinux (PVH) %.0f ms, bzImage %.0f ms (baseline); vmlinux/bzImage = %.2f\n",
              pvh_boot, bz_boot, pvh_boot / bz_boot);
  std::printf("median cycle: vmlinux (PVH) %.0f ms, bzImage %.0f ms; vmlinux/bzImage = %.2f\n", pvh_cycle,
              bz_cycle, pvh_cycle / bz_cycle);
  return 0;
}
