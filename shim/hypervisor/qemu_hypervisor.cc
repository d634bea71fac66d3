#include "shim/hypervisor/qemu_hypervisor.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "shim/util/file_tail.h"
#include "vmm/common/child_process.h"
#include "vmm/common/error.h"
#include "vmm/logger/logger.h"
#include "vmm/logger/metrics.h"
#include "vmm/vhost_user/device_spec.h"
#include "vmm/vhost_user/vhost_user_backend.h"

namespace ember::shim {

namespace {

std::pair<common::UniqueFd, common::UniqueFd> socket_pair(const std::string& what) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0) common::throw_errno("socketpair for " + what);
  return {common::UniqueFd(fds[0]), common::UniqueFd(fds[1])};
}

}  // namespace

QemuHypervisor::QemuHypervisor(ShimLog& log) : log_(log) {}

QemuHypervisor::~QemuHypervisor() { stop(); }

std::vector<std::string> QemuHypervisor::build_argv(const VmSpec& spec, int first_fd, const std::string& console_log) {
  std::string memory = std::to_string(spec.memory_mib) + "M";
  std::vector<std::string> argv = {spec.qemu_binary,
                                   // acpi=off: QEMU then appends virtio_mmio.device= entries to the
                                   // command line (ember's kernel finds devices the Firecracker way).
                                   "-M", "microvm,acpi=off,memory-backend=mem",
                                   "-accel", spec.accel};
  if (spec.accel == "kvm") argv.insert(argv.end(), {"-cpu", "host"});
  argv.insert(argv.end(), {"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
                           // microvm makes its virtio-mmio transports legacy by default;
                           // vhost-user backends expect VIRTIO_F_VERSION_1.
                           "-global", "virtio-mmio.force-legacy=false",
                           "-smp", std::to_string(spec.vcpus), "-m", memory,
                           // vhost-user backends map guest RAM: a shared memfd.
                           "-object", "memory-backend-memfd,id=mem,size=" + memory + ",share=on",
                           "-chardev", "file,id=console,path=" + console_log,
                           "-serial", "chardev:console",
                           "-kernel", spec.kernel});
  if (!spec.initrd.empty()) argv.insert(argv.end(), {"-initrd", spec.initrd});
  // reboot=t: microvm has no i8042, a keyboard-controller reset wastes
  // seconds; panic=-1 turns a guest panic into a QEMU exit (-no-reboot).
  std::string cmdline = "console=ttyS0 reboot=t panic=-1 quiet";
  // Under TCG the local APIC timer calibration costs ~0.3 s and often fails;
  // the PIT serves the guest fine.
  if (spec.accel == "tcg") cmdline += " noapictimer";
  if (!spec.kernel_args.empty()) cmdline += " " + spec.kernel_args;
  argv.insert(argv.end(), {"-append", cmdline});
  int fd = first_fd;
  for (const auto& drive : spec.drives) {
    std::string id = "vu-" + drive.id;
    argv.insert(argv.end(), {"-chardev", "socket,id=" + id + ",fd=" + std::to_string(fd++), "-device",
                             "vhost-user-blk,chardev=" + id + ",num-queues=1"});
  }
  argv.insert(argv.end(), {"-chardev", "socket,id=vu-vsock,fd=" + std::to_string(fd++), "-device",
                           "vhost-user-vsock-device,chardev=vu-vsock"});
  argv.insert(argv.end(),
              {"-chardev", "socket,id=qmp,fd=" + std::to_string(fd++), "-mon", "chardev=qmp,mode=control"});
  return argv;
}

void QemuHypervisor::start(const VmSpec& spec) {
  console_log_ = spec.console_log.empty() ? spec.vm_dir + "/console.log" : spec.console_log;
  qemu_log_ = spec.vm_dir + "/qemu.log";
  vsock_uds_ = spec.vm_dir + "/vsock.sock";

  vmm_logger_ = std::make_unique<vmm::Logger>("ember-shim-" + spec.name);
  vmm::LoggerConfig logger_config;
  logger_config.log_path = spec.vm_dir + "/vmm.log";
  logger_config.level = vmm::LogLevel::kWarning;
  {
    // The VMM logger opens its file O_RDWR|O_CREAT without truncating.
    std::ofstream touch(*logger_config.log_path, std::ios::app);
  }
  vmm_logger_->configure(logger_config);
  vmm_metrics_ = std::make_unique<vmm::Metrics>("ember-shim-" + spec.name);
  vmm_logger_->set_metrics(vmm_metrics_.get());

  // Our ends stay here; QEMU's ends are passed as fds 3, 4, ...
  std::vector<common::UniqueFd> qemu_ends;
  for (const auto& drive : spec.drives) {
    auto [ours, theirs] = socket_pair("drive " + drive.id);
    vmm::vhost_user::DeviceSpec device;
    device.type = vmm::virtio::DeviceType::kBlock;
    device.id = drive.id;
    device.drive.drive_id = drive.id;
    device.drive.path_on_host = drive.path;
    device.drive.is_read_only = drive.read_only;
    auto backend = std::make_unique<vmm::vhost_user::VhostUserBackend>(
        spec.vm_dir + "/" + drive.id + ".vu", vmm::vhost_user::make_device(device, *vmm_logger_, *vmm_metrics_),
        *vmm_logger_, *vmm_metrics_, drive.id);
    backend->start(std::move(ours));
    backends_.push_back(std::move(backend));
    drive_ids_.push_back(drive.id);
    qemu_ends.push_back(std::move(theirs));
  }
  {
    auto [ours, theirs] = socket_pair("vsock");
    ::unlink(vsock_uds_.c_str());
    vmm::vhost_user::DeviceSpec device;
    device.type = vmm::virtio::DeviceType::kVsock;
    device.vsock.guest_cid = spec.guest_cid;
    device.vsock.uds_path = vsock_uds_;
    auto backend = std::make_unique<vmm::vhost_user::VhostUserBackend>(
        spec.vm_dir + "/vsock.vu", vmm::vhost_user::make_device(device, *vmm_logger_, *vmm_metrics_), *vmm_logger_,
        *vmm_metrics_, "vsock");
    backend->start(std::move(ours));
    backends_.push_back(std::move(backend));
    qemu_ends.push_back(std::move(theirs));
  }
  auto [qmp_ours, qmp_theirs] = socket_pair("qmp");
  qemu_ends.push_back(std::move(qmp_theirs));
  qmp_ = std::make_unique<QmpClient>(std::move(qmp_ours));

  constexpr int kFirstFd = 3;
  std::vector<std::string> argv = build_argv(spec, kFirstFd, console_log_);
  std::vector<std::pair<int, int>> fds;
  for (size_t i = 0; i < qemu_ends.size(); ++i) fds.emplace_back(kFirstFd + static_cast<int>(i), qemu_ends[i].get());

  std::string command;
  for (const auto& a : argv) command += (command.empty() ? "" : " ") + a;
  log_.debug("starting qemu", {{"vm", spec.name}, {"command", command}});

  watcher_ = std::thread([this, argv, fds] { watch(argv, fds); });
  {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return spawned_; });
    if (!spawn_error_.empty()) throw common::Error("start qemu: " + spawn_error_);
  }
  qemu_ends.clear();  // QEMU has them now
  try {
    qmp_->negotiate(std::chrono::seconds(30));
  } catch (const std::exception& e) {
    throw common::Error(std::string("start qemu: ") + e.what() + diagnostics());
  }
  log_.info("qemu started", {{"vm", spec.name}, {"pid", pid_.load()}, {"accel", spec.accel}});
}

void QemuHypervisor::watch(std::vector<std::string> argv, std::vector<std::pair<int, int>> fds) {
  ::pthread_setname_np(::pthread_self(), "ember-qemu");
  common::ChildProcess child;
  {
    std::lock_guard lock(mutex_);
    try {
      common::UniqueFd out(::open(qemu_log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
      if (!out) common::throw_errno("open " + qemu_log_);
      common::SpawnOptions options;
      options.argv = argv;
      options.stdout_fd = out.get();
      options.stderr_fd = out.get();
      options.extra_fds = fds;
      options.new_session = true;
      // Tied to this thread, which lives until QEMU is reaped.
      options.die_with_parent = true;
      child = common::ChildProcess::spawn(options);
      pid_.store(child.pid());
    } catch (const std::exception& e) {
      spawn_error_ = e.what();
    }
    spawned_ = true;
    changed_.notify_all();
    if (!spawn_error_.empty()) return;
  }
  // Wait without reaping, so stop() never signals a recycled pid.
  siginfo_t info{};
  while (::waitid(P_PID, static_cast<id_t>(child.pid()), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR) {
  }
  bool stop_requested;
  {
    std::lock_guard lock(mutex_);
    exited_ = true;
    stop_requested = stop_requested_;
  }
  int status = child.wait();
  VmExitInfo exit;
  exit.code = stop_requested ? 0 : (WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  exit.reason = stop_requested ? "stopped by the shim" : "qemu " + common::describe_wait_status(status);
  log_.info("qemu exited", {{"pid", child.pid()}, {"status", common::describe_wait_status(status)}});
  {
    std::lock_guard lock(mutex_);
    changed_.notify_all();
  }
  if (on_exit_) on_exit_(exit);
}

void QemuHypervisor::pause() { qmp_->execute("stop"); }

void QemuHypervisor::resume() { qmp_->execute("cont"); }

void QemuHypervisor::update_drive(const std::string& drive_id, const std::string& path) {
  for (size_t i = 0; i < drive_ids_.size(); ++i) {
    if (drive_ids_[i] != drive_id) continue;
    vmm::DriveUpdate update;
    update.drive_id = drive_id;
    update.path_on_host = path;
    backends_[i]->update_block(update);
    return;
  }
  throw common::Error("update drive " + drive_id + ": no such drive slot");
}

void QemuHypervisor::stop() {
  {
    std::lock_guard lock(mutex_);
    stop_requested_ = true;
    if (spawned_ && !exited_ && pid_.load() > 0) ::kill(pid_.load(), SIGKILL);
  }
  if (watcher_.joinable() && watcher_.get_id() != std::this_thread::get_id()) watcher_.join();
  stop_backends();
  if (!vsock_uds_.empty()) ::unlink(vsock_uds_.c_str());
}

void QemuHypervisor::stop_backends() {
  for (auto& b : backends_) {
    try {
      b->stop();
    } catch (const std::exception& e) {
      log_.warn("stop vhost-user backend", {{"error", e.what()}});
    }
  }
  backends_.clear();
  drive_ids_.clear();
}

std::string QemuHypervisor::diagnostics() const {
  std::string out;
  std::string qemu = file_tail(qemu_log_, 2048);
  if (!qemu.empty()) out += "\nqemu output (" + qemu_log_ + "):\n" + qemu;
  std::string console = file_tail(console_log_, 4096);
  if (!console.empty()) out += "\nguest console (" + console_log_ + "), last lines:\n" + console;
  return out;
}

}  // namespace ember::shim
