// ember-guest-smoke: PID 1 of the smoke-test guest image.
//
// Mounts the pseudo filesystems, prints one marker line per fact the host
// side checks, then reboots (QEMU runs with -no-reboot, so the VM exits):
//
//   EMBER-GUEST-READY uptime=<seconds>      always, first
//   EMBER-VIRTIO virtio0 device=0x0002 driver=virtio_blk features=0x... block=vda
//   EMBER-GUEST-ERROR <what>: <why>         any failure; the run continues
//   EMBER-GUEST-DONE errors=<n>             always, last, just before reboot
//
// `ember.smoke=a,b` on the kernel command line chooses the actions after
// READY (default: `virtio`; `ember.smoke=` runs none). See kActions below.
// PID 1 must never return or exit (the kernel would panic and hide the
// report), so every failure is printed and the machine still reboots.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <exception>
#include <functional>
#include <string>
#include <vector>

#include "guest-agent/smoke/smoke_checks.h"
#include "vmm/common/error.h"
#include "vmm/common/unique_fd.h"

namespace ember::agent::smoke {
namespace {

// One write(2) per line, so the line reaches the serial console in one piece.
void say(const std::string& line) {
  std::string out = line + "\n";
  const char* p = out.data();
  size_t left = out.size();
  while (left > 0) {
    ssize_t n = ::write(STDOUT_FILENO, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // nowhere left to report to
    p += n;
    left -= static_cast<size_t>(n);
  }
}

void make_dir(const char* path) {
  if (::mkdir(path, 0755) < 0 && errno != EEXIST) common::throw_errno(std::string("mkdir ") + path);
}

// EBUSY: already mounted (e.g. by the kernel), which is what we want.
void mount_fs(const char* source, const char* target, const char* type, unsigned long flags = 0,
              const char* data = nullptr) {
  make_dir(target);
  if (::mount(source, target, type, flags, data) < 0 && errno != EBUSY) {
    common::throw_errno(std::string("mount ") + type + " on " + target);
  }
}

void write_file(const std::string& path, const std::string& content) {
  common::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) common::throw_errno("open " + path + " for writing");
  if (::write(fd.get(), content.data(), content.size()) != static_cast<ssize_t>(content.size())) {
    common::throw_errno("write " + path);
  }
  if (::fsync(fd.get()) < 0) common::throw_errno("fsync " + path);
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

void mount_pseudo_filesystems() {
  mount_fs("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC);
  mount_fs("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC);
  mount_fs("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
}

// The kernel hands PID 1 /dev/console as fds 0-2 when the initramfs has that
// node; reopen it from devtmpfs if it did not.
void ensure_console() {
  if (::fcntl(STDOUT_FILENO, F_GETFD) >= 0) return;
  common::UniqueFd console(::open("/dev/console", O_RDWR | O_NOCTTY));
  if (!console) return;
  for (int fd = 0; fd <= 2; ++fd) ::dup2(console.get(), fd);
}

// --- actions -----------------------------------------------------------------

void action_virtio() {
  for (const auto& device : list_virtio_devices("/sys")) say(format_virtio_line(device));
}

// cgroup v2 as crun uses it: mount, list the controllers, and enable the ones
// OCI limits need (memory.max, pids.max, cpu.max) for child groups.
void action_cgroup() {
  mount_fs("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC);
  say("EMBER-CGROUP controllers=" + first_line(read_text_file("/sys/fs/cgroup/cgroup.controllers")));
  write_file("/sys/fs/cgroup/cgroup.subtree_control", "+memory +pids +cpu");
  say("EMBER-CGROUP subtree_control=" +
      first_line(read_text_file("/sys/fs/cgroup/cgroup.subtree_control")));
}

// Round trip through the first disk: report /hello.txt from an ext4 image
// the host made, leave /from-guest.txt for the host to read back.
void action_ext4_rw() {
  mount_fs("/dev/vda", "/mnt", "ext4");
  std::string hello = "(missing)";
  try {
    hello = first_line(read_text_file("/mnt/hello.txt"));
  } catch (const common::Error&) {
  }
  say("EMBER-EXT4 read=" + hello);
  write_file("/mnt/from-guest.txt", "written by ember-guest-smoke, uptime " + read_uptime("/proc") + "\n");
  if (::umount("/mnt") < 0) common::throw_errno("umount /mnt");
  say("EMBER-EXT4 wrote=/from-guest.txt");
}

// Never finishes: lets harness tests prove that a stuck guest is killed.
void action_hang() {
  say("EMBER-GUEST-HANG");
  for (;;) ::pause();
}

struct Action {
  const char* name;
  void (*run)();
};

constexpr Action kActions[] = {
    {"virtio", action_virtio},
    {"cgroup", action_cgroup},
    {"ext4-rw", action_ext4_rw},
    {"hang", action_hang},
};

// --- PID 1 -------------------------------------------------------------------

[[noreturn]] void power_off() {
  ::sync();
  ::reboot(RB_AUTOBOOT);
  say("EMBER-GUEST-ERROR reboot: " + common::errno_text(errno));
  for (;;) ::pause();
}

[[noreturn]] void run() {
  int errors = 0;
  auto guarded = [&](const std::string& what, const std::function<void()>& step) {
    try {
      step();
    } catch (const std::exception& e) {
      say("EMBER-GUEST-ERROR " + what + ": " + e.what());
      ++errors;
    }
  };

  guarded("mount", mount_pseudo_filesystems);
  ensure_console();
  guarded("ready", [] { say("EMBER-GUEST-READY uptime=" + read_uptime("/proc")); });

  std::string cmdline;
  guarded("cmdline", [&] { cmdline = read_text_file("/proc/cmdline"); });
  for (const auto& name : smoke_actions(cmdline, {"virtio"})) {
    guarded(name, [&] {
      for (const auto& action : kActions) {
        if (name == action.name) return action.run();
      }
      throw common::Error("unknown action in ember.smoke=");
    });
  }
  say("EMBER-GUEST-DONE errors=" + std::to_string(errors));
  power_off();
}

}  // namespace
}  // namespace ember::agent::smoke

int main() {
  if (::getpid() != 1) {
    std::fprintf(stderr, "ember-guest-smoke: must run as PID 1 (the guest image's /init)\n");
    return 2;
  }
  try {
    ember::agent::smoke::run();
  } catch (...) {
    // run() handles its own errors; this only keeps PID 1 from returning.
  }
  ember::agent::smoke::power_off();
}
