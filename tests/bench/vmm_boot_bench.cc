// ember's machine against QEMU `-M microvm` on the same /dev/kvm, same run,
// same payload guest (a PVH ELF both can boot):
//   1. InstanceStart to first guest serial byte, in-process (Vmm::start);
//   2. process spawn to first guest serial byte: ember-vmm --no-api
//      --config-file vs qemu-system-x86_64 -M microvm;
//   3. VMM memory overhead: RSS of the process with a booted, spinning guest,
//      excluding guest RAM (mappings at least the guest's size), from
//      /proc/<pid>/smaps, as Firecracker's memory monitor counts it.
// Prints medians and ratios; no assertions.
//
// usage: vmm_boot_bench [runs]   (default 10). Exit 77 when /dev/kvm is unusable.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/harness/command.h"
#include "tests/harness/temp_dir.h"
#include "vmm/common/child_process.h"
#include "vmm/common/error.h"
#include "vmm/common/unique_fd.h"
#include "vmm/vmm.h"
#include "vmm/vstate/kvm.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using ember::common::ChildProcess;
using ember::common::SpawnOptions;
using ember::common::UniqueFd;

constexpr uint64_t kGuestMib = 128;

fs::path payload(const std::string& name) { return fs::path(EMBER_BINARY_DIR) / "tests/payloads" / (name + ".elf"); }
fs::path ember_vmm() { return fs::path(EMBER_BINARY_DIR) / "vmm/api/ember-vmm"; }

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Waits until `fd` has `text` (or, with an empty text, any byte); returns
// false on timeout or EOF. Collects what it read into `seen`.
bool wait_for_output(int fd, const std::string& text, std::string& seen, int timeout_ms) {
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (Clock::now() < deadline) {
    if (text.empty() ? !seen.empty() : seen.find(text) != std::string::npos) return true;
    pollfd p{fd, POLLIN, 0};
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
    if (::poll(&p, 1, std::max(left, 1)) <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return false;
    seen.append(buf, static_cast<size_t>(n));
  }
  return text.empty() ? !seen.empty() : seen.find(text) != std::string::npos;
}

// In-process: Vmm::start to the first serial byte, through a FIFO.
bool inprocess_once(const ember::testing::TempDir& dir, double& start_ms, double& first_byte_ms) {
  fs::path fifo = dir / "serial.fifo";
  fs::remove(fifo);
  if (::mkfifo(fifo.c_str(), 0600) != 0) return false;
  UniqueFd reader(::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  ember::vmm::VmResources r;
  r.boot_source = ember::vmm::BootSourceConfig{payload("hello_pvh").string(), std::nullopt, std::string("console=ttyS0")};
  r.machine.mem_size_mib = kGuestMib;
  r.serial_out_path = fifo.string();
  ember::vmm::Logger logger("bench");
  ember::vmm::LoggerConfig off;
  off.level = ember::vmm::LogLevel::kOff;
  logger.configure(off);
  ember::vmm::Metrics metrics("bench");
  auto t0 = Clock::now();
  auto vm = ember::vmm::Vmm::start(r, logger, metrics);
  start_ms = ms_since(t0);
  std::string seen;
  bool ok = wait_for_output(reader.get(), "", seen, 10000);
  first_byte_ms = ms_since(t0);
  vm->stop(0);
  vm->wait();
  return ok;
}

struct Spawned {
  ChildProcess child;
  UniqueFd out;
};

Spawned spawn(const std::vector<std::string>& argv) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) ember::common::throw_errno("pipe");
  UniqueFd r(p[0]), w(p[1]);
  SpawnOptions o;
  o.argv = argv;
  o.stdout_fd = w.get();
  o.stderr_fd = -1;
  o.die_with_parent = true;
  Spawned s{ChildProcess::spawn(o), std::move(r)};
  return s;
}

std::vector<std::string> ember_argv(const ember::testing::TempDir& dir, const std::string& guest) {
  fs::path config = dir / ("vm_" + guest + ".json");
  std::ofstream(config) << R"({"boot-source": {"kernel_image_path": ")" << payload(guest).string()
                        << R"(", "boot_args": "console=ttyS0"}, "drives": [], "machine-config": {"vcpu_count": 1, "mem_size_mib": )"
                        << kGuestMib << "}}";
  return {ember_vmm().string(), "--no-api", "--config-file", config.string(), "--log-path", (dir / "vmm.log").string()};
}

std::vector<std::string> qemu_argv(const std::string& guest) {
  // PVH boot through QEMU's option ROM; `-cpu qemu64` because this host's KVM
  // refuses MSRs `-cpu host` would set.
  return {"qemu-system-x86_64", "-M", "microvm,x-option-roms=on,rtc=off,acpi=off", "-accel", "kvm", "-cpu", "qemu64",
          "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio", "-monitor", "none", "-m",
          std::to_string(kGuestMib), "-kernel", payload(guest).string(), "-append", "console=ttyS0"};
}

bool spawn_once(const std::vector<std::string>& argv, double& first_byte_ms) {
  auto t0 = Clock::now();
  Spawned s = spawn(argv);
  std::string seen;
  bool ok = wait_for_output(s.out.get(), "", seen, 10000);
  first_byte_ms = ms_since(t0);
  s.child.kill(SIGKILL);
  s.child.wait();
  return ok;
}

struct Rss {
  uint64_t total_kb = 0;
  uint64_t guest_kb = 0;  // in mappings at least as big as guest RAM
  uint64_t overhead_kb() const { return total_kb - guest_kb; }
};

Rss measure_rss(pid_t pid) {
  std::ifstream smaps("/proc/" + std::to_string(pid) + "/smaps");
  Rss rss;
  std::string line;
  uint64_t size = 0;
  while (std::getline(smaps, line)) {
    unsigned long lo, hi;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(' ') < line.find(':')) {
      size = hi - lo;
      continue;
    }
    if (line.rfind("Rss:", 0) == 0) {
      uint64_t kb = std::stoull(line.substr(4));
      rss.total_kb += kb;
      if (size >= (kGuestMib << 20)) rss.guest_kb += kb;
    }
  }
  return rss;
}

bool memory_of(const std::vector<std::string>& argv, Rss& out) {
  Spawned s = spawn(argv);
  std::string seen;
  bool ok = wait_for_output(s.out.get(), "spinning", seen, 10000);
  if (ok) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    out = measure_rss(s.child.pid());
  }
  s.child.kill(SIGKILL);
  s.child.wait();
  return ok;
}

void print_row(const char* what, double ember, double baseline, const char* unit) {
  if (baseline > 0 && ember > 0) {
    std::printf("%-44s %9.2f %-3s %9.2f %-3s  qemu/ember = %.2fx\n", what, ember, unit, baseline, unit,
                baseline / ember);
  } else {
    std::printf("%-44s %9.2f %-3s %9s\n", what, ember, unit, "n/a");
  }
}

}  // namespace

int main(int argc, char** argv) {
  int runs = argc > 1 ? std::atoi(argv[1]) : 10;
  std::string why;
  if (!ember::vmm::Kvm::usable(&why)) {
    std::printf("vmm_boot_bench: skipped: /dev/kvm: %s\n", why.c_str());
    return 77;
  }
  ember::testing::TempDir dir("ember-vmm-bench");
  bool have_vmm = fs::exists(ember_vmm());
  bool have_qemu = !ember::testing::find_program("qemu-system-x86_64").empty();
  std::printf("vmm_boot_bench: %d runs, guest %llu MiB, payload hello_pvh/spin_pvh (PVH ELF)\n", runs,
              static_cast<unsigned long long>(kGuestMib));

  std::vector<double> starts, inproc;
  for (int i = 0; i < runs; ++i) {
    double s = 0, f = 0;
    if (!inprocess_once(dir, s, f)) {
      std::fprintf(stderr, "in-process boot %d failed\n", i);
      return 1;
    }
    starts.push_back(s);
    inproc.push_back(f);
  }

  std::vector<double> ember_spawn, qemu_spawn;
  for (int i = 0; i < runs; ++i) {
    double t = 0;
    if (have_vmm && spawn_once(ember_argv(dir, "hello_pvh"), t)) ember_spawn.push_back(t);
    if (have_qemu && spawn_once(qemu_argv("hello_pvh"), t)) qemu_spawn.push_back(t);
  }

  Rss ember_rss, qemu_rss;
  bool ember_mem = have_vmm && memory_of(ember_argv(dir, "spin_pvh"), ember_rss);
  bool qemu_mem = have_qemu && memory_of(qemu_argv("spin_pvh"), qemu_rss);

  std::printf("\n%-44s %13s %13s\n", "", "ember", "qemu microvm");
  print_row("Vmm::start (build + vCPUs running), median", median(starts), 0, "ms");
  print_row("Vmm::start -> first serial byte, median", median(inproc), 0, "ms");
  print_row("process spawn -> first serial byte, median", median(ember_spawn), median(qemu_spawn), "ms");
  if (ember_mem) {
    print_row("VMM memory overhead (RSS excl. guest RAM)", ember_rss.overhead_kb() / 1024.0,
              qemu_mem ? qemu_rss.overhead_kb() / 1024.0 : 0, "MiB");
    print_row("guest RAM resident", ember_rss.guest_kb / 1024.0, qemu_mem ? qemu_rss.guest_kb / 1024.0 : 0, "MiB");
  }
  if (!have_vmm) std::printf("(ember-vmm not built: %s)\n", ember_vmm().c_str());
  if (!have_qemu) std::printf("(qemu-system-x86_64 not installed: no baseline)\n");
  return 0;
}
