#include "shim/hypervisor/ember_hypervisor.h"

#include <unistd.h>

#include <fstream>

#include "shim/util/file_tail.h"
#include "vmm/common/error.h"
#include "vmm/logger/logger.h"
#include "vmm/logger/metrics.h"
#include "vmm/vmm.h"

namespace ember::shim {

EmberHypervisor::EmberHypervisor(ShimLog& log) : log_(log) {}

EmberHypervisor::~EmberHypervisor() { stop(); }

vmm::VmResources EmberHypervisor::build_resources(const VmSpec& spec, const std::string& console_log,
                                                  const std::string& vsock_uds) {
  vmm::VmResources r;
  vmm::BootSourceConfig boot;
  boot.kernel_image_path = spec.kernel;
  if (!spec.initrd.empty()) boot.initrd_path = spec.initrd;
  // Firecracker's defaults, but with the serial console kept (the shim logs
  // it to a file) and quiet to keep the boot short.
  std::string args = "console=ttyS0 reboot=k panic=1 nomodule i8042.noaux i8042.nomux i8042.dumbkbd swiotlb=noforce quiet";
  if (!spec.kernel_args.empty()) args += " " + spec.kernel_args;
  boot.boot_args = args;
  r.boot_source = boot;
  r.machine.vcpu_count = spec.vcpus;
  r.machine.mem_size_mib = spec.memory_mib;
  for (const auto& d : spec.drives) {
    vmm::DriveConfig drive;
    drive.drive_id = d.id;
    drive.path_on_host = d.path;
    drive.is_read_only = d.read_only;
    r.drives.push_back(drive);
  }
  r.vsock = vmm::VsockConfig{spec.guest_cid, vsock_uds};
  r.serial_out_path = console_log;
  return r;
}

void EmberHypervisor::start(const VmSpec& spec) {
  console_log_ = spec.console_log.empty() ? spec.vm_dir + "/console.log" : spec.console_log;
  vsock_uds_ = spec.vm_dir + "/vsock.sock";
  vmm_log_ = spec.vm_dir + "/vmm.log";
  ::unlink(vsock_uds_.c_str());
  vmm_logger_ = std::make_unique<vmm::Logger>("ember-shim-" + spec.name);
  vmm::LoggerConfig logger_config;
  logger_config.log_path = vmm_log_;
  logger_config.level = vmm::LogLevel::kWarning;
  {
    std::ofstream touch(vmm_log_, std::ios::app);
  }
  vmm_logger_->configure(logger_config);
  vmm_metrics_ = std::make_unique<vmm::Metrics>("ember-shim-" + spec.name);
  vmm_logger_->set_metrics(vmm_metrics_.get());

  vm_ = vmm::Vmm::start(build_resources(spec, console_log_, vsock_uds_), *vmm_logger_, *vmm_metrics_);
  vm_->on_exit([this](const vmm::VmExit& exit) {
    bool stopped;
    {
      std::lock_guard lock(mutex_);
      stopped = stop_requested_;
    }
    VmExitInfo info{stopped ? 0 : exit.exit_code, stopped ? "stopped by the shim" : exit.reason};
    log_.info("vm exited", {{"backend", "ember"}, {"code", exit.exit_code}, {"reason", exit.reason}});
    if (on_exit_) on_exit_(info);
  });
  log_.info("ember vmm started", {{"vm", spec.name}, {"vcpus", spec.vcpus}, {"memory_mib", spec.memory_mib}});
}

void EmberHypervisor::pause() {
  if (!vm_) throw common::Error("pause: the VM is not running");
  vm_->pause();
}

void EmberHypervisor::resume() {
  if (!vm_) throw common::Error("resume: the VM is not running");
  vm_->resume();
}

void EmberHypervisor::update_drive(const std::string& drive_id, const std::string& path) {
  if (!vm_) throw common::Error("update drive " + drive_id + ": the VM is not running");
  vmm::DriveUpdate update;
  update.drive_id = drive_id;
  update.path_on_host = path;
  vm_->update_drive(update);
}

void EmberHypervisor::stop() {
  {
    std::lock_guard lock(mutex_);
    stop_requested_ = true;
  }
  if (vm_) {
    vm_->stop(0);
    vm_->wait();
  }
  if (!vsock_uds_.empty()) ::unlink(vsock_uds_.c_str());
}

pid_t EmberHypervisor::vmm_pid() const { return ::getpid(); }

std::string EmberHypervisor::diagnostics() const {
  std::string out;
  std::string vmm = file_tail(vmm_log_, 2048);
  if (!vmm.empty()) out += "\nvmm log (" + vmm_log_ + "):\n" + vmm;
  std::string console = file_tail(console_log_, 4096);
  if (!console.empty()) out += "\nguest console (" + console_log_ + "), last lines:\n" + console;
  return out;
}

}  // namespace ember::shim
