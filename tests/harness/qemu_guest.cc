#include "tests/harness/qemu_guest.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <sstream>
#include <system_error>

#include "tests/harness/command.h"
#include "vmm/common/error.h"

#if !defined(EMBER_GUEST_DIR) || !defined(EMBER_BINARY_DIR)
#error "link ember-test-env: it defines EMBER_GUEST_DIR and EMBER_BINARY_DIR"
#endif

namespace ember::testing {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// QEMU option values are comma-separated; a literal comma is written twice.
std::string qemu_escape(const std::string& value) {
  std::string out;
  for (char c : value) {
    out += c;
    if (c == ',') out += ',';
  }
  return out;
}

std::string join(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out += ' ';
    bool quote = a.find_first_of(" \"'") != std::string::npos || a.empty();
    out += quote ? "'" + a + "'" : a;
  }
  return out;
}

}  // namespace

std::vector<std::string> qemu_argv(const QemuGuestConfig& c, const std::string& accel) {
  std::string memory = std::to_string(c.memory_mib) + "M";
  std::vector<std::string> argv = {c.qemu};
  // acpi=off: only then does QEMU append the virtio_mmio.device= entries of
  // the attached devices to the kernel command line (ember's kernel has no
  // ACPI and finds virtio-mmio devices the Firecracker way).
  std::string machine = "microvm,acpi=off";
  if (c.shared_memory) machine += ",memory-backend=mem";
  argv.insert(argv.end(), {"-M", machine, "-accel", accel});
  if (accel == "kvm") argv.insert(argv.end(), {"-cpu", "host"});
  argv.insert(argv.end(), {"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
                           // Modern (virtio 1.x) virtio-mmio: microvm defaults to legacy.
                           "-global", "virtio-mmio.force-legacy=false",
                           "-smp", std::to_string(c.vcpus), "-m", memory,
                           "-chardev", "stdio,id=console,signal=off", "-serial", "chardev:console",
                           "-kernel", c.kernel.string()});
  if (!c.initrd.empty()) argv.insert(argv.end(), {"-initrd", c.initrd.string()});
  std::string cmdline = c.cmdline;
  // Under TCG the kernel spends ~0.3 s calibrating and verifying the local
  // APIC timer, and often disables it afterwards for failing verification;
  // the PIT tick (broadcast to other vCPUs) serves a test guest fine.
  if (accel == "tcg") cmdline += " noapictimer";
  if (!c.extra_cmdline.empty()) cmdline += " " + c.extra_cmdline;
  argv.insert(argv.end(), {"-append", cmdline});
  if (c.shared_memory) {
    argv.insert(argv.end(), {"-object", "memory-backend-memfd,id=mem,size=" + memory + ",share=on"});
  }
  for (size_t i = 0; i < c.drives.size(); ++i) {
    std::string id = "drive" + std::to_string(i);
    std::string drive = "id=" + id + ",file=" + qemu_escape(c.drives[i].path.string()) + ",format=raw,if=none";
    if (c.drives[i].read_only) drive += ",readonly=on";
    argv.insert(argv.end(), {"-drive", drive, "-device", "virtio-blk-device,drive=" + id});
  }
  argv.insert(argv.end(), c.extra_args.begin(), c.extra_args.end());
  return argv;
}

QemuGuestConfig QemuGuestConfig::smoke() {
  QemuGuestConfig config;
  config.kernel = guest_image_dir() / "vmlinux";
  config.initrd = guest_image_dir() / "initramfs-smoke.cpio";
  return config;
}

QemuGuest::QemuGuest(QemuGuestConfig config) : config_(std::move(config)) {
  std::string accel = config_.accel.empty() ? select_accelerator() : config_.accel;
  argv_ = qemu_argv(config_, accel);
  if (!config_.console_log_path.empty()) {
    log_file_.reset(::open(config_.console_log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!log_file_) common::throw_errno("open console log " + config_.console_log_path.string());
  }
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0) common::throw_errno("start QEMU: pipe");
  output_.reset(fds[0]);
  common::UniqueFd write_end(fds[1]);

  common::SpawnOptions options;
  options.argv = argv_;
  options.stdout_fd = write_end.get();
  options.stderr_fd = write_end.get();
  // QEMU dies with the test even when the test crashes. PR_SET_PDEATHSIG
  // follows the thread that spawned it: create the guest on a thread that
  // outlives it.
  options.die_with_parent = true;
  started_ = Clock::now();
  deadline_ = started_ + config_.timeout;
  try {
    process_ = common::ChildProcess::spawn(options);
    pid_ = process_.pid();
  } catch (const common::Error& e) {
    throw common::Error(std::string("start QEMU (") + join(argv_) + "): " + e.what());
  }
  write_end.reset();
  reader_ = std::thread([this] { reader_loop(); });
}

QemuGuest::~QemuGuest() {
  {
    std::lock_guard lock(mutex_);
    kill_requested_ = true;
  }
  changed_.notify_all();
  if (reader_.joinable()) reader_.join();
}

void QemuGuest::append_output(const char* data, size_t size) {
  if (log_file_) (void)!::write(log_file_.get(), data, size);
  auto now = Clock::now();
  bool new_lines = false;
  {
    std::lock_guard lock(mutex_);
    log_.append(data, size);
    partial_.append(data, size);
    size_t start = 0, end;
    while ((end = partial_.find('\n', start)) != std::string::npos) {
      std::string text = partial_.substr(start, end - start);
      while (!text.empty() && text.back() == '\r') text.pop_back();
      lines_.push_back({std::move(text), now});
      start = end + 1;
      new_lines = true;
    }
    partial_.erase(0, start);
  }
  if (new_lines) changed_.notify_all();
}

// The only thread that touches process_ after the constructor: it reads the
// console, reaps QEMU, and enforces the watchdog and kill requests.
void QemuGuest::reader_loop() {
  char buf[8192];
  auto drain = [&] {
    ssize_t n;
    while ((n = ::read(output_.get(), buf, sizeof buf)) > 0) append_output(buf, static_cast<size_t>(n));
    return n;  // 0 at EOF, -1 with EAGAIN when QEMU has more to say later
  };
  bool eof = false;
  for (;;) {
    bool kill_now = false;
    {
      std::lock_guard lock(mutex_);
      if (kill_requested_) {
        kill_now = true;
      } else if (Clock::now() >= deadline_) {
        kill_now = true;
        timed_out_ = true;
      }
    }
    if (kill_now) {
      process_.kill(SIGKILL);
      int status = process_.wait();
      drain();
      std::lock_guard lock(mutex_);
      if (timed_out_) {
        auto ran = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started_);
        std::string note = "\n[harness] QEMU killed by the watchdog after " + std::to_string(ran.count()) + " ms\n";
        log_ += note;
      }
      exit_status_ = status;
      break;
    }
    if (!eof) {
      pollfd pfd{output_.get(), POLLIN, 0};
      if (::poll(&pfd, 1, 50) > 0) eof = drain() == 0;
    } else {
      ::usleep(20 * 1000);
    }
    if (auto status = process_.try_wait()) {
      drain();
      std::lock_guard lock(mutex_);
      exit_status_ = *status;
      break;
    }
  }
  std::lock_guard lock(mutex_);
  if (!partial_.empty()) {
    lines_.push_back({partial_, Clock::now()});
    partial_.clear();
  }
  changed_.notify_all();
}

std::optional<std::string> QemuGuest::find_line_locked(const std::regex& re) const {
  for (const auto& line : lines_) {
    if (std::regex_search(line.text, re)) return line.text;
  }
  return std::nullopt;
}

std::optional<std::string> QemuGuest::wait_for_line(const std::string& pattern, std::chrono::milliseconds timeout) {
  std::regex re(pattern);
  std::unique_lock lock(mutex_);
  std::optional<std::string> found;
  changed_.wait_for(lock, timeout, [&] {
    found = find_line_locked(re);
    return found.has_value() || exit_status_.has_value();
  });
  if (!found) found = find_line_locked(re);
  return found;
}

std::vector<std::string> QemuGuest::lines_matching(const std::string& pattern) const {
  std::regex re(pattern);
  std::lock_guard lock(mutex_);
  std::vector<std::string> out;
  for (const auto& line : lines_) {
    if (std::regex_search(line.text, re)) out.push_back(line.text);
  }
  return out;
}

std::optional<int> QemuGuest::wait_for_exit(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [&] { return exit_status_.has_value(); });
  return exit_status_;
}

bool QemuGuest::running() const {
  std::lock_guard lock(mutex_);
  return !exit_status_.has_value();
}

void QemuGuest::kill() {
  std::unique_lock lock(mutex_);
  kill_requested_ = true;
  changed_.wait(lock, [&] { return exit_status_.has_value(); });
}

void QemuGuest::set_timeout(std::chrono::milliseconds from_now) {
  std::lock_guard lock(mutex_);
  deadline_ = Clock::now() + from_now;
}

bool QemuGuest::timed_out() const {
  std::lock_guard lock(mutex_);
  return timed_out_;
}

std::optional<std::chrono::milliseconds> QemuGuest::boot_time() const {
  std::regex re(config_.ready_marker);
  std::lock_guard lock(mutex_);
  for (const auto& line : lines_) {
    if (std::regex_search(line.text, re)) {
      return std::chrono::duration_cast<std::chrono::milliseconds>(line.at - started_);
    }
  }
  return std::nullopt;
}

std::string QemuGuest::console_log() const {
  std::lock_guard lock(mutex_);
  return log_;
}

std::string QemuGuest::describe() const {
  std::lock_guard lock(mutex_);
  std::ostringstream out;
  out << "QEMU: " << join(argv_) << "\n";
  if (!exit_status_) {
    out << "state: running\n";
  } else {
    out << "state: " << common::describe_wait_status(*exit_status_) << (timed_out_ ? " (watchdog)" : "") << "\n";
  }
  out << "console log (" << log_.size() << " bytes):\n" << log_;
  if (!log_.empty() && log_.back() != '\n') out << "\n";
  return out.str();
}

std::string select_accelerator() {
  static const std::string accel = [] {
    const char* forced = std::getenv("EMBER_QEMU_ACCEL");
    if (forced && *forced) return std::string(forced);
    return std::string(kvm_runs_linux_guests() ? "kvm" : "tcg");
  }();
  return accel;
}

bool kvm_runs_linux_guests(const fs::path& checker) {
  fs::path program = checker;
  if (program.empty()) {
    const char* env = std::getenv("EMBER_KVM_CHECK");
    program = env && *env ? fs::path(env) : fs::path(EMBER_BINARY_DIR) / "vmm/kvm_check/ember-kvm-check";
  }
  if (::access(program.c_str(), X_OK) != 0) return false;
  if (::access("/dev/kvm", R_OK | W_OK) != 0) return false;
  try {
    return run_command({program.string()}, std::chrono::seconds(60)).ok();
  } catch (const common::Error&) {
    return false;
  }
}

fs::path guest_image_dir() {
  const char* env = std::getenv("EMBER_GUEST_DIR");
  return env && *env ? fs::path(env) : fs::path(EMBER_GUEST_DIR);
}

bool have_qemu(const std::string& qemu) { return !find_program(qemu).empty(); }

bool have_smoke_image() {
  std::error_code ec;
  fs::path dir = guest_image_dir();
  return fs::exists(dir / "vmlinux", ec) && fs::exists(dir / "bzImage", ec) &&
         fs::exists(dir / "initramfs-smoke.cpio", ec);
}

}  // namespace ember::testing
