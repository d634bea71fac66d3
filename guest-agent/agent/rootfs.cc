#include "guest-agent/agent/rootfs.h"

#include <sys/mount.h>
#include <sys/stat.h>

#include <cerrno>

#include "guest-agent/agent/block_devices.h"
#include "vmm/common/error.h"

namespace ember::agent {

RootfsMount::~RootfsMount() {
  try {
    unmount();
  } catch (...) {
  }
}

void RootfsMount::mount_filesystem(const FilesystemSpec& fs, const std::string& target,
                                   bool read_only) {
  std::string source = resolve_block_device(fs.device, fs.serial);
  MountOptions opts = parse_mount_options(fs.options);
  if (read_only) opts.flags |= MS_RDONLY;
  make_dirs(target);

  struct stat st {};
  if (::stat(source.c_str(), &st) < 0) common::throw_errno("rootfs source " + source);
  if (S_ISDIR(st.st_mode)) {
    if (!fs.fstype.empty() && fs.fstype != "bind" && fs.fstype != "none") {
      throw common::Error("rootfs source " + source + " is a directory but fstype is " + fs.fstype);
    }
    mounts_.push_back(mount_or_throw(source, target, "", MS_BIND | MS_REC, ""));
    if (opts.flags & MS_RDONLY) {
      // A bind mount takes its flags only from a remount.
      if (::mount(nullptr, target.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr) <
          0) {
        common::throw_errno("remount " + target + " read-only");
      }
    }
    return;
  }
  std::string fstype = fs.fstype.empty() ? "ext4" : fs.fstype;
  if (fstype == "bind")
    throw common::Error("rootfs source " + source + " has fstype bind but is not a directory");
  if (S_ISBLK(st.st_mode)) {
    flush_block_device(source);
    block_devices_.push_back(source);
    mounts_.push_back(mount_or_throw(source, target, fstype, opts.flags, opts.data));
    return;
  }
  if (S_ISREG(st.st_mode)) {
    // Host mode: an image file. The loop device detaches itself when the
    // filesystem is unmounted (autoclear), or here if mounting fails.
    LoopDevice loop = attach_loop_device(source, (opts.flags & MS_RDONLY) != 0);
    mounts_.push_back(mount_or_throw(loop.path, target, fstype, opts.flags, opts.data));
    return;
  }
  throw common::Error("rootfs source " + source +
                      " is neither a block device, an image file nor a directory");
}

RootfsMount RootfsMount::mount(const RootfsSpec& spec, const std::string& work_dir,
                               const std::string& target) {
  RootfsMount r;
  make_dirs(work_dir);
  make_dirs(target);
  if (spec.lowers.empty()) {
    if (!spec.upper) throw common::Error("rootfs has neither an upper filesystem nor lower layers");
    r.mount_filesystem(*spec.upper, target, spec.readonly);
    return r;
  }

  std::string lowerdir;
  for (std::size_t i = 0; i < spec.lowers.size(); ++i) {
    std::string dir = work_dir + "/lower" + std::to_string(i);
    r.mount_filesystem(spec.lowers[i], dir, true);
    lowerdir += (i ? ":" : "") + dir;
  }
  if (spec.readonly && !spec.upper) {
    if (spec.lowers.size() == 1) {
      r.mounts_.push_back(mount_or_throw(work_dir + "/lower0", target, "", MS_BIND, ""));
      if (::mount(nullptr, target.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr) <
          0) {
        common::throw_errno("remount " + target + " read-only");
      }
    } else {
      r.mounts_.push_back(
          mount_or_throw("overlay", target, "overlay", MS_RDONLY, "lowerdir=" + lowerdir));
    }
    return r;
  }

  std::string upper_mnt = work_dir + "/upper-fs";
  if (spec.upper && (!spec.upper->device.empty() || !spec.upper->serial.empty())) {
    r.mount_filesystem(*spec.upper, upper_mnt, false);
  } else {
    make_dirs(upper_mnt);
    r.mounts_.push_back(
        mount_or_throw("tmpfs", upper_mnt, "tmpfs", MS_NODEV | MS_NOSUID, "mode=0755"));
  }
  make_dirs(upper_mnt + "/upper");
  make_dirs(upper_mnt + "/work");
  std::string data =
      "lowerdir=" + lowerdir + ",upperdir=" + upper_mnt + "/upper,workdir=" + upper_mnt + "/work";
  r.mounts_.push_back(
      mount_or_throw("overlay", target, "overlay", spec.readonly ? MS_RDONLY : 0, data));
  return r;
}

void RootfsMount::unmount() {
  std::string errors;
  while (!mounts_.empty()) {
    MountPoint m = std::move(mounts_.back());
    mounts_.pop_back();
    try {
      m.unmount();
    } catch (const std::exception& e) {
      errors += (errors.empty() ? "" : "; ") + std::string(e.what());
    }
  }
  for (const auto& dev : block_devices_) {
    try {
      flush_block_device(dev);
    } catch (const std::exception& e) {
      errors += (errors.empty() ? "" : "; ") + std::string(e.what());
    }
  }
  block_devices_.clear();
  if (!errors.empty()) throw common::Error(errors);
}

}  // namespace ember::agent
