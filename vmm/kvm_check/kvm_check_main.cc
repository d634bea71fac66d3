// ember-kvm-check: boots a tiny guest under ember's own KVM path that
// executes SSE arithmetic (and popcnt and xsave when CPUID offers them), the
// instructions a stock Linux kernel needs and a software KVM cannot emulate.
//
// Exit status: 0 the guest ran them all; 1 it did not (the reason is printed);
// 2 KVM is not usable at all; 3 the guest did not finish in time.
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "vmm/common/error.h"
#include "vmm/common/unique_fd.h"
#include "vmm/vmm.h"
#include "vmm/vstate/kvm.h"

extern const unsigned char kKvmCheckGuest[];
extern const unsigned long kKvmCheckGuest_size;

namespace {

using ember::common::UniqueFd;

UniqueFd memfd(const char* name) {
  UniqueFd fd(::memfd_create(name, MFD_CLOEXEC));
  if (!fd) ember::common::throw_errno(std::string("memfd_create ") + name);
  return fd;
}

std::string fd_path(const UniqueFd& fd) { return "/proc/self/fd/" + std::to_string(fd.get()); }

std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  off_t off = 0;
  for (;;) {
    ssize_t n = ::pread(fd, buf, sizeof buf, off);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    off += n;
  }
  return out;
}

int usage() {
  std::fprintf(stderr,
               "usage: ember-kvm-check [--verbose] [--timeout-ms N]\n"
               "Exits 0 if this host's KVM can run a guest using SSE/popcnt/xsave (a stock Linux guest).\n");
  return 64;
}

}  // namespace

int main(int argc, char** argv) {
  bool verbose = false;
  long timeout_ms = 10000;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--verbose") == 0) {
      verbose = true;
    } else if (std::strcmp(argv[i], "--timeout-ms") == 0 && i + 1 < argc) {
      timeout_ms = std::atol(argv[++i]);
    } else {
      return usage();
    }
  }
  std::string why;
  if (!ember::vmm::Kvm::usable(&why)) {
    std::fprintf(stderr, "ember-kvm-check: KVM is not usable: %s\n", why.c_str());
    return 2;
  }
  try {
    UniqueFd kernel = memfd("ember-kvm-check-guest");
    if (::write(kernel.get(), kKvmCheckGuest, kKvmCheckGuest_size) != static_cast<ssize_t>(kKvmCheckGuest_size)) {
      ember::common::throw_errno("write the check guest");
    }
    UniqueFd serial = memfd("ember-kvm-check-serial");

    ember::vmm::VmResources resources;
    resources.boot_source = ember::vmm::BootSourceConfig{fd_path(kernel), std::nullopt, std::string("")};
    resources.machine.vcpu_count = 1;
    resources.machine.mem_size_mib = 32;
    resources.serial_out_path = fd_path(serial);

    ember::vmm::Logger logger("ember-kvm-check");
    ember::vmm::LoggerConfig log_config;
    log_config.level = verbose ? ember::vmm::LogLevel::kDebug : ember::vmm::LogLevel::kOff;
    if (verbose) log_config.log_path = "/dev/stderr";
    logger.configure(log_config);
    ember::vmm::Metrics metrics("ember-kvm-check");

    auto vm = ember::vmm::Vmm::start(resources, logger, metrics);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (!vm->try_wait() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    bool timed_out = !vm->try_wait();
    if (timed_out) vm->stop(1);
    ember::vmm::VmExit exit = vm->wait();
    std::string console = read_all(serial.get());
    if (verbose) std::fprintf(stderr, "%s", console.c_str());
    if (timed_out) {
      std::fprintf(stderr, "ember-kvm-check: the check guest did not finish within %ld ms\n", timeout_ms);
      return 3;
    }
    if (exit.exit_code == 0 && console.find("EMBER-KVM-CHECK: OK") != std::string::npos) {
      std::printf("ember-kvm-check: KVM runs guests that use SSE/popcnt/xsave\n");
      return 0;
    }
    std::fprintf(stderr, "ember-kvm-check: this KVM cannot run standard guests: %s\n", exit.reason.c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ember-kvm-check: %s\n", e.what());
    return 1;
  }
}
