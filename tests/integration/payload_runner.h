// Runs a payload guest (tests/payloads) on ember's machine through the
// library API and collects what happened: how the VM exited, the guest's
// serial console and the VMM log.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tests/harness/require.h"
#include "tests/harness/temp_dir.h"
#include "vmm/builder/builder.h"
#include "vmm/vmm.h"

namespace ember::testing {

// Path of a built payload: ${EMBER_PAYLOAD_DIR}/<name>.elf.
std::filesystem::path payload_path(const std::string& name);
// Whether /dev/kvm can run a VM here; `why` says why not.
bool kvm_usable(std::string* why);
// Whether this host has a KVM device at all: /dev/kvm exists and opening it
// does not fail with ENODEV/ENXIO (module loaded but not bound).
bool kvm_present();

struct PayloadRun {
  vmm::VmExit exit;
  bool timed_out = false;
  std::chrono::milliseconds elapsed{0};
  std::string serial;
  std::string log;
};

class PayloadVm {
 public:
  // Resources for `payload` with serial output and a DEBUG log in a temp dir.
  explicit PayloadVm(const std::string& payload);

  vmm::VmResources& resources() { return resources_; }
  std::vector<vmm::ExtraVirtioDevice>& extra_devices() { return extra_; }

  // Builds and boots; throws what the builder throws.
  void start();
  vmm::Vmm& vm() { return *vm_; }
  // Waits for the VM to exit (stopping it with code 99 after `timeout`).
  PayloadRun wait(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  // start() + wait().
  PayloadRun run(std::chrono::milliseconds timeout = std::chrono::seconds(20));

  std::string serial() const;
  std::string log() const;
  vmm::Logger& logger() { return *logger_; }
  vmm::Metrics& metrics() { return *metrics_; }

 private:
  TempDir dir_;
  vmm::VmResources resources_;
  std::vector<vmm::ExtraVirtioDevice> extra_;
  std::unique_ptr<vmm::Logger> logger_;
  std::unique_ptr<vmm::Metrics> metrics_;
  std::unique_ptr<vmm::Vmm> vm_;
  std::chrono::steady_clock::time_point started_;
};

}  // namespace ember::testing

// Use at the top of a test that boots a payload: skips it when this host has
// no KVM at all (no /dev/kvm, or a kernel that did not bind KVM: ENODEV),
// which no install step can change; fails it in CI when /dev/kvm is there but
// cannot create a VM, saying why.
#define EMBER_REQUIRE_KVM()                                                      \
  do {                                                                           \
    std::string kvm_why;                                                         \
    bool kvm_ok = ::ember::testing::kvm_usable(&kvm_why);                        \
    EMBER_REQUIRE_HOST(kvm_ok || ::ember::testing::kvm_present(), "/dev/kvm: " + kvm_why); \
    EMBER_REQUIRE(kvm_ok, "/dev/kvm: " + kvm_why);                               \
  } while (0)
