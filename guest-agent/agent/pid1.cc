#include "guest-agent/agent/pid1.h"

#include <dirent.h>
#include <fcntl.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "vmm/common/error.h"
#include "vmm/common/unique_fd.h"

namespace ember::agent::pid1 {
namespace {

void try_mount(AgentLog& log, const char* source, const char* target, const char* fstype,
               unsigned long flags, const char* data) {
  ::mkdir(target, 0755);
  if (::mount(source, target, fstype, flags, data) == 0) return;
  if (errno == EBUSY) return;  // already there (e.g. CONFIG_DEVTMPFS_MOUNT)
  log.error(std::string("mount ") + fstype + " on " + target + ": " + common::errno_text(errno));
}

void write_file(AgentLog& log, const std::string& path, const std::string& text) {
  common::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd || ::write(fd.get(), text.data(), text.size()) < 0) {
    log.warn("write \"" + text + "\" to " + path + ": " + common::errno_text(errno));
  }
}

}  // namespace

void ensure_console(AgentLog& log) {
  bool missing = false;
  for (int fd = 0; fd <= 2; ++fd) missing = missing || ::fcntl(fd, F_GETFD) < 0;
  if (!missing) return;
  ::mkdir("/dev", 0755);
  ::mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
  int fd = ::open("/dev/console", O_RDWR | O_NOCTTY);
  if (fd < 0) fd = ::open("/dev/null", O_RDWR);
  if (fd < 0) return;  // nowhere to write; the ring buffer still works
  for (int target = 0; target <= 2; ++target) {
    if (::fcntl(target, F_GETFD) < 0) ::dup2(fd, target);
  }
  if (fd > 2) ::close(fd);
  log.info("stdio reopened on /dev/console");
}

void leave_initramfs(AgentLog& log) {
  const char* kNewRoot = "/.ember-root";
  if (::mkdir(kNewRoot, 0755) < 0 && errno != EEXIST) {
    log.error(std::string("leave initramfs: mkdir ") + kNewRoot + ": " + common::errno_text(errno));
    return;
  }
  if (::mount("tmpfs", kNewRoot, "tmpfs", 0, "mode=0755") < 0) {
    log.error("leave initramfs: mount tmpfs: " + common::errno_text(errno));
    return;
  }
  DIR* dir = ::opendir("/");
  if (!dir) {
    log.error("leave initramfs: list /: " + common::errno_text(errno));
    return;
  }
  bool ok = true;
  while (dirent* e = ::readdir(dir)) {
    std::string name = e->d_name;
    if (name == "." || name == ".." || "/" + name == kNewRoot) continue;
    std::string from = "/" + name, to = std::string(kNewRoot) + "/" + name;
    struct stat st {};
    if (::lstat(from.c_str(), &st) < 0) continue;
    if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t n = ::readlink(from.c_str(), target, sizeof target - 1);
      if (n >= 0) {
        target[n] = '\0';
        ok = ::symlink(target, to.c_str()) == 0 && ok;
      }
      continue;
    }
    if (S_ISDIR(st.st_mode)) {
      ::mkdir(to.c_str(), st.st_mode & 07777);
    } else {
      common::UniqueFd f(::open(to.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, st.st_mode & 07777));
    }
    if (::mount(from.c_str(), to.c_str(), nullptr, MS_BIND | MS_REC, nullptr) < 0) {
      log.error("leave initramfs: bind " + from + ": " + common::errno_text(errno));
      ok = false;
    }
  }
  ::closedir(dir);
  if (::chdir(kNewRoot) < 0 || ::mount(".", "/", nullptr, MS_MOVE, nullptr) < 0 ||
      ::chroot(".") < 0 || ::chdir("/") < 0) {
    log.error("leave initramfs: switch root: " + common::errno_text(errno));
    ::chdir("/");
    return;
  }
  if (ok) log.info("root moved from the initramfs to a tmpfs (containers can pivot_root)");
}

void setup_system(AgentLog& log, const std::string& hostname) {
  ::umask(022);
  constexpr unsigned long kSafe = MS_NOSUID | MS_NODEV | MS_NOEXEC;
  try_mount(log, "proc", "/proc", "proc", kSafe, nullptr);
  try_mount(log, "sysfs", "/sys", "sysfs", kSafe, nullptr);
  try_mount(log, "devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
  try_mount(log, "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
            "newinstance,ptmxmode=0666,mode=0620");
  try_mount(log, "shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
  try_mount(log, "tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
  try_mount(log, "tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
  // cgroup v2 only: crun handles it natively, one tree serves stats and OOM
  // events, and nothing in the guest needs v1.
  try_mount(log, "cgroup2", "/sys/fs/cgroup", "cgroup2", kSafe, "nsdelegate");
  {
    std::ifstream in("/sys/fs/cgroup/cgroup.controllers");
    std::string controller, enable;
    while (in >> controller) enable += (enable.empty() ? "+" : " +") + controller;
    if (!enable.empty()) write_file(log, "/sys/fs/cgroup/cgroup.subtree_control", enable);
  }
  ::symlink("/proc/self/fd", "/dev/fd");
  ::symlink("/proc/self/fd/0", "/dev/stdin");
  ::symlink("/proc/self/fd/1", "/dev/stdout");
  ::symlink("/proc/self/fd/2", "/dev/stderr");
  ::symlink("pts/ptmx", "/dev/ptmx");  // devtmpfs has its own ptmx node; harmless if it exists

  if (::sethostname(hostname.data(), hostname.size()) < 0) {
    log.warn("sethostname " + hostname + ": " + common::errno_text(errno));
  }
  common::UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (!sock || ::ioctl(sock.get(), SIOCGIFFLAGS, &ifr) < 0 ||
      (ifr.ifr_flags |= IFF_UP, ::ioctl(sock.get(), SIOCSIFFLAGS, &ifr) < 0)) {
    log.warn("bring up lo: " + common::errno_text(errno));
  }
  ::setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 0);
  // Ctrl-Alt-Del (i8042 / the VMM's SendCtrlAltDel) becomes SIGINT to PID 1:
  // a graceful shutdown instead of an instant reboot.
  ::reboot(RB_DISABLE_CAD);
}

std::string kernel_option(const std::string& name, const std::string& fallback) {
  std::ifstream in("/proc/cmdline");
  std::string word, key = "ember." + name + "=";
  while (in >> word) {
    if (word.rfind(key, 0) == 0) return word.substr(key.size());
    if (word == "ember." + name) return "1";
  }
  return fallback;
}

void end_guest(bool power_off, AgentLog& log) {
  log.info(power_off ? "powering off" : "rebooting");
  ::sync();
  ::reboot(power_off ? RB_POWER_OFF : RB_AUTOBOOT);
  log.error("reboot: " + common::errno_text(errno));
  for (;;) ::pause();
}

}  // namespace ember::agent::pid1
