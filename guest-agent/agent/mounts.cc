#include "guest-agent/agent/mounts.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

#include "vmm/common/error.h"

namespace ember::agent {

MountOptions parse_mount_options(const std::vector<std::string>& options) {
  // Flags that set a bit, and those that clear one (the mount(8) defaults).
  static const std::map<std::string, std::pair<unsigned long, bool>> kFlags = {
      {"ro", {MS_RDONLY, true}},
      {"rw", {MS_RDONLY, false}},
      {"nosuid", {MS_NOSUID, true}},
      {"suid", {MS_NOSUID, false}},
      {"nodev", {MS_NODEV, true}},
      {"dev", {MS_NODEV, false}},
      {"noexec", {MS_NOEXEC, true}},
      {"exec", {MS_NOEXEC, false}},
      {"sync", {MS_SYNCHRONOUS, true}},
      {"async", {MS_SYNCHRONOUS, false}},
      {"dirsync", {MS_DIRSYNC, true}},
      {"remount", {MS_REMOUNT, true}},
      {"mand", {MS_MANDLOCK, true}},
      {"nomand", {MS_MANDLOCK, false}},
      {"noatime", {MS_NOATIME, true}},
      {"atime", {MS_NOATIME, false}},
      {"nodiratime", {MS_NODIRATIME, true}},
      {"diratime", {MS_NODIRATIME, false}},
      {"relatime", {MS_RELATIME, true}},
      {"norelatime", {MS_RELATIME, false}},
      {"strictatime", {MS_STRICTATIME, true}},
      {"silent", {MS_SILENT, true}},
      {"loud", {MS_SILENT, false}},
      {"defaults", {0, true}},
  };
  MountOptions out;
  for (const auto& opt : options) {
    if (opt.empty()) continue;
    if (opt == "bind" || opt == "rbind") {
      out.bind = true;
      out.recursive = out.recursive || opt == "rbind";
      continue;
    }
    // Propagation flags belong to a separate mount(2) call; container rootfs
    // mounts are private to the agent anyway.
    if (opt == "private" || opt == "rprivate" || opt == "shared" || opt == "rshared" ||
        opt == "slave" || opt == "rslave" || opt == "unbindable" || opt == "runbindable") {
      continue;
    }
    auto it = kFlags.find(opt);
    if (it == kFlags.end()) {
      out.data += (out.data.empty() ? "" : ",") + opt;
    } else if (it->second.second) {
      out.flags |= it->second.first;
    } else {
      out.flags &= ~it->second.first;
    }
  }
  return out;
}

MountPoint& MountPoint::operator=(MountPoint&& other) noexcept {
  if (this != &other) {
    try {
      unmount();
    } catch (...) {
    }
    target_ = std::exchange(other.target_, {});
  }
  return *this;
}

MountPoint::~MountPoint() {
  try {
    unmount();
  } catch (...) {
    // Destructors can't report; callers that care call unmount() first.
  }
}

void MountPoint::unmount() {
  if (target_.empty()) return;
  std::string target = std::exchange(target_, {});
  if (::umount2(target.c_str(), UMOUNT_NOFOLLOW) == 0 || errno == EINVAL || errno == ENOENT) return;
  int err = errno;
  // Busy (a process still has a file open): detach it from the tree now, the
  // kernel finishes when the last reference goes.
  if (err == EBUSY && ::umount2(target.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) == 0) {
    throw common::Error("unmount " + target + ": busy, detached lazily");
  }
  throw common::SystemError(err, "unmount " + target);
}

MountPoint mount_or_throw(const std::string& source, const std::string& target,
                          const std::string& fstype, unsigned long flags, const std::string& data) {
  if (::mount(source.c_str(), target.c_str(), fstype.empty() ? nullptr : fstype.c_str(), flags,
              data.empty() ? nullptr : data.c_str()) < 0) {
    common::throw_errno("mount " + (fstype.empty() ? std::string("bind") : fstype) + " " + source +
                        " on " + target + (data.empty() ? "" : " (" + data + ")"));
  }
  return MountPoint(target);
}

LoopDevice attach_loop_device(const std::string& image, bool read_only) {
  common::UniqueFd backing(::open(image.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC));
  if (!backing) common::throw_errno("open image " + image);
  common::UniqueFd control(::open("/dev/loop-control", O_RDWR | O_CLOEXEC));
  if (!control) common::throw_errno("open /dev/loop-control for " + image);

  // Another process may grab the device between GET_FREE and CONFIGURE; then
  // ask again.
  for (int attempt = 0; attempt < 16; ++attempt) {
    int n = ::ioctl(control.get(), LOOP_CTL_GET_FREE);
    if (n < 0) common::throw_errno("find a free loop device for " + image);
    std::string path = "/dev/loop" + std::to_string(n);
    common::UniqueFd dev(::open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC));
    if (!dev) common::throw_errno("open " + path + " for " + image);

    loop_config config{};
    config.fd = static_cast<uint32_t>(backing.get());
    config.info.lo_flags = LO_FLAGS_AUTOCLEAR | (read_only ? LO_FLAGS_READ_ONLY : 0);
    std::strncpy(reinterpret_cast<char*>(config.info.lo_file_name), image.c_str(),
                 LO_NAME_SIZE - 1);
    if (::ioctl(dev.get(), LOOP_CONFIGURE, &config) == 0) return {path, std::move(dev)};
    if (errno == EBUSY) continue;
    if (errno != EINVAL && errno != ENOTTY)
      common::throw_errno("configure " + path + " for " + image);

    // Kernels before 5.8 have no LOOP_CONFIGURE.
    if (::ioctl(dev.get(), LOOP_SET_FD, backing.get()) < 0) {
      if (errno == EBUSY) continue;
      common::throw_errno("attach " + image + " to " + path);
    }
    if (::ioctl(dev.get(), LOOP_SET_STATUS64, &config.info) < 0) {
      int err = errno;
      ::ioctl(dev.get(), LOOP_CLR_FD, 0);
      throw common::SystemError(err, "set status of " + path + " for " + image);
    }
    return {path, std::move(dev)};
  }
  throw common::Error("attach " + image + " to a loop device: every free device was taken first");
}

void make_dirs(const std::string& path) {
  std::string partial;
  std::size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    partial = path.substr(0, pos);
    if (partial.empty()) continue;
    if (::mkdir(partial.c_str(), 0755) < 0 && errno != EEXIST)
      common::throw_errno("create directory " + partial);
  }
}

namespace {

bool remove_below(int dir_fd, dev_t dev) {
  DIR* dir = ::fdopendir(::dup(dir_fd));
  if (!dir) return false;
  bool ok = true;
  while (dirent* e = ::readdir(dir)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    struct stat st {};
    if (::fstatat(dir_fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
      ok = false;
      continue;
    }
    if (S_ISDIR(st.st_mode)) {
      if (st.st_dev != dev) {  // a mount point: leave it (and fail)
        ok = false;
        continue;
      }
      common::UniqueFd child(
          ::openat(dir_fd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!child || !remove_below(child.get(), dev)) ok = false;
      if (::unlinkat(dir_fd, e->d_name, AT_REMOVEDIR) < 0) ok = false;
    } else if (::unlinkat(dir_fd, e->d_name, 0) < 0) {
      ok = false;
    }
  }
  ::closedir(dir);
  return ok;
}

}  // namespace

bool remove_tree(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) < 0) return errno == ENOENT;
  if (!S_ISDIR(st.st_mode)) return ::unlink(path.c_str()) == 0;
  common::UniqueFd dir(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir) return false;
  bool ok = remove_below(dir.get(), st.st_dev);
  return ::rmdir(path.c_str()) == 0 && ok;
}

}  // namespace ember::agent
