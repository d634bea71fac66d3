// Boots a real Linux guest (ember's kernel + an initramfs) in QEMU `-M microvm`
// and watches its serial console. This is how ember tests its guest image, its
// agent and its devices (over vhost-user) where KVM cannot run Linux: see
// DESIGN.md "Testing on machines without hardware virtualisation".
//
//   QemuGuestConfig config = QemuGuestConfig::smoke();   // build/guest/{vmlinux,initramfs-smoke.cpio}
//   config.drives.push_back({image_path});
//   QemuGuest guest(config);
//   auto line = guest.wait_for_line("EMBER-GUEST-READY", 60s);
//   ASSERT_TRUE(line) << guest.describe();
//
// QEMU is killed (SIGKILL) and reaped when the QemuGuest goes away, and when it
// outlives `config.timeout`.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "vmm/common/child_process.h"
#include "vmm/common/unique_fd.h"

namespace ember::testing {

struct QemuDrive {
  std::filesystem::path path;  // raw image
  bool read_only = false;
};

struct QemuGuestConfig {
  std::string qemu = "qemu-system-x86_64";
  std::filesystem::path kernel;  // ELF vmlinux (entered through PVH) or bzImage
  std::filesystem::path initrd;  // empty: none
  // Kernel command line. QEMU's microvm (with acpi=off, which the harness
  // sets) appends the virtio_mmio.device= entries of the attached devices. reboot=t: microvm has no i8042,
  // and the keyboard-controller reset the kernel tries first wastes seconds
  // there; panic=-1 turns a guest panic into an exit instead of a hang.
  std::string cmdline = "console=ttyS0 reboot=t panic=-1";
  std::string extra_cmdline;  // appended to cmdline
  unsigned vcpus = 1;
  unsigned memory_mib = 256;
  std::vector<QemuDrive> drives;  // virtio-blk-device, in order: vda, vdb, ...
  // Guest RAM as a shared memfd (memory-backend-memfd,share=on), which
  // vhost-user backends need to map it. Add their -chardev/-device pairs to
  // extra_args.
  bool shared_memory = false;
  std::vector<std::string> extra_args;  // appended to QEMU's argv
  // "tcg", "kvm", or empty for select_accelerator().
  std::string accel;
  // QEMU is killed when it runs longer than this (the test then sees an exit).
  std::chrono::milliseconds timeout = std::chrono::seconds(180);
  // First console line matching this marks the end of boot (boot_time()).
  std::string ready_marker = "EMBER-GUEST-READY";
  // Also write the console output here as it arrives (empty: memory only).
  std::filesystem::path console_log_path;

  // The smoke image built by the `guest-image` target (EMBER_GUEST_DIR):
  // vmlinux + initramfs-smoke.cpio.
  static QemuGuestConfig smoke();
};

// A console line and when the harness read it.
struct ConsoleLine {
  std::string text;  // without the line end ("\r\n" on a serial console)
  std::chrono::steady_clock::time_point at;
};

class QemuGuest {
 public:
  // Spawns QEMU; throws common::Error when it cannot be started.
  explicit QemuGuest(QemuGuestConfig config);
  QemuGuest(const QemuGuest&) = delete;
  QemuGuest& operator=(const QemuGuest&) = delete;
  ~QemuGuest();

  // The first console line (since boot) matching `pattern` (std::regex_search),
  // waiting up to `timeout` for it; nullopt when it did not appear in time or
  // QEMU exited without printing it.
  std::optional<std::string> wait_for_line(const std::string& pattern, std::chrono::milliseconds timeout);
  // Non-blocking: the lines printed so far that match `pattern`.
  std::vector<std::string> lines_matching(const std::string& pattern) const;

  // QEMU's wait status once it exited (see common::describe_wait_status);
  // nullopt when it still runs after `timeout`. QEMU keeps running then.
  std::optional<int> wait_for_exit(std::chrono::milliseconds timeout);
  bool running() const;
  // Kills QEMU now and waits until it is reaped.
  void kill();
  // Restarts the `config.timeout` watchdog to fire `from_now` from now.
  void set_timeout(std::chrono::milliseconds from_now);
  // True when the watchdog killed QEMU.
  bool timed_out() const;

  // From spawning QEMU to the first line matching `config.ready_marker`.
  std::optional<std::chrono::milliseconds> boot_time() const;
  // Everything QEMU and the guest printed so far (console and QEMU's stderr).
  std::string console_log() const;
  const std::vector<std::string>& argv() const { return argv_; }
  pid_t pid() const { return pid_; }
  // For failure messages: the command line, the state, and the whole log.
  std::string describe() const;

 private:
  void reader_loop();
  void append_output(const char* data, size_t size);
  std::optional<std::string> find_line_locked(const std::regex& re) const;

  QemuGuestConfig config_;
  std::vector<std::string> argv_;
  std::chrono::steady_clock::time_point started_;
  pid_t pid_ = -1;
  common::UniqueFd output_;         // read end of QEMU's stdout+stderr
  common::UniqueFd log_file_;
  common::ChildProcess process_;    // touched by the reader thread only

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<ConsoleLine> lines_;
  std::string partial_;             // text after the last line end
  std::string log_;
  std::optional<int> exit_status_;
  std::chrono::steady_clock::time_point deadline_;
  bool timed_out_ = false;
  bool kill_requested_ = false;
  std::thread reader_;
};

// QEMU's argv for `config` with accelerator `accel` ("tcg"/"kvm"), as
// QemuGuest runs it.
std::vector<std::string> qemu_argv(const QemuGuestConfig& config, const std::string& accel);

// The accelerator tests use: $EMBER_QEMU_ACCEL when set ("kvm" or "tcg"),
// otherwise "kvm" only if kvm_runs_linux_guests() says so, else "tcg".
// Computed once per process.
std::string select_accelerator();

// Whether this host's KVM can run a real Linux guest (the machines ember is
// developed on expose a software /dev/kvm that cannot). Runs the VMM's
// self-check, `ember-kvm-check` (boots a payload guest that executes SSE;
// exit 0 = usable), with a 60 s limit: `checker` if given, else
// $EMBER_KVM_CHECK, else the one in this build tree
// (EMBER_BINARY_DIR/vmm/kvm_check/ember-kvm-check). When that program was not
// built, or there is no /dev/kvm, the answer is false: TCG is always correct,
// only slower.
bool kvm_runs_linux_guests(const std::filesystem::path& checker = {});

// Paths of the image the `guest-image` target builds, and whether QEMU is there.
std::filesystem::path guest_image_dir();
bool have_qemu(const std::string& qemu = "qemu-system-x86_64");
// True when vmlinux, bzImage and initramfs-smoke.cpio exist in guest_image_dir().
bool have_smoke_image();

}  // namespace ember::testing
