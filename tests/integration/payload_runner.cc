#include "tests/integration/payload_runner.h"

#include <fcntl.h>

#include <cerrno>
#include <fstream>
#include <sstream>
#include <thread>

#include "vmm/common/unique_fd.h"
#include "vmm/microvm.h"
#include "vmm/vstate/kvm.h"

namespace ember::testing {
namespace {
std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace

std::filesystem::path payload_path(const std::string& name) {
  return std::filesystem::path(EMBER_PAYLOAD_DIR) / (name + ".elf");
}

bool kvm_usable(std::string* why) { return vmm::Kvm::usable(why); }

bool kvm_present() {
  common::UniqueFd fd(::open("/dev/kvm", O_RDWR | O_CLOEXEC));
  if (fd) return true;
  return errno != ENOENT && errno != ENODEV && errno != ENXIO;
}

PayloadVm::PayloadVm(const std::string& payload) : dir_("ember-payload") {
  resources_.boot_source = vmm::BootSourceConfig{payload_path(payload).string(), std::nullopt, std::nullopt};
  resources_.machine.vcpu_count = 1;
  resources_.machine.mem_size_mib = 128;
  resources_.serial_out_path = (dir_ / "serial.out").string();
  logger_ = std::make_unique<vmm::Logger>("payload-test");
  vmm::LoggerConfig config;
  config.log_path = (dir_ / "vmm.log").string();
  config.level = vmm::LogLevel::kDebug;
  logger_->configure(config);
  metrics_ = std::make_unique<vmm::Metrics>("payload-test");
}

void PayloadVm::start() {
  started_ = std::chrono::steady_clock::now();
  vmm::Machine machine = vmm::build_microvm(resources_, *logger_, *metrics_, std::move(extra_));
  auto vm = std::make_unique<vmm::MicroVm>(resources_, std::move(machine), *logger_, *metrics_);
  vm->start();
  vm_ = std::move(vm);
}

PayloadRun PayloadVm::wait(std::chrono::milliseconds timeout) {
  PayloadRun run;
  auto deadline = started_ + timeout;
  while (!vm_->try_wait() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (!vm_->try_wait()) {
    run.timed_out = true;
    vm_->stop(99);
  }
  run.exit = vm_->wait();
  run.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started_);
  run.serial = serial();
  run.log = log();
  return run;
}

PayloadRun PayloadVm::run(std::chrono::milliseconds timeout) {
  start();
  return wait(timeout);
}

std::string PayloadVm::serial() const { return slurp(dir_ / "serial.out"); }
std::string PayloadVm::log() const { return slurp(dir_ / "vmm.log"); }

}  // namespace ember::testing
