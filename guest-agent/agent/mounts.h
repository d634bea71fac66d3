// Mounting container root filesystems: block devices (the guest), image files
// through loop devices and plain directories (host mode), and overlayfs over
// read-only layers. Every mount is owned by a MountPoint and unmounted when it
// goes away, so a failed Create or a Delete leaves nothing behind.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "vmm/common/unique_fd.h"

namespace ember::agent {

// mount(8)-style option list split into MS_* flags and the filesystem's data
// string ("ro,noatime,errors=remount-ro" -> MS_RDONLY|MS_NOATIME, "errors=remount-ro").
struct MountOptions {
  unsigned long flags = 0;
  std::string data;
  bool bind = false;       // "bind" / "rbind"
  bool recursive = false;  // "rbind"
};
MountOptions parse_mount_options(const std::vector<std::string>& options);

// An active mount; unmounts on destruction (lazily if busy, and logged by the
// caller through `on_error`).
class MountPoint {
 public:
  MountPoint() = default;
  explicit MountPoint(std::string target) : target_(std::move(target)) {}
  MountPoint(MountPoint&& other) noexcept : target_(std::exchange(other.target_, {})) {}
  MountPoint& operator=(MountPoint&& other) noexcept;
  MountPoint(const MountPoint&) = delete;
  MountPoint& operator=(const MountPoint&) = delete;
  ~MountPoint();

  const std::string& target() const { return target_; }
  // Unmounts now; throws common::Error naming the target if even a lazy
  // unmount fails.
  void unmount();

 private:
  std::string target_;
};

// mount(2) with an error that names everything: `mount ext4 /dev/vdb on
// /run/ember/c1/rootfs: Invalid argument`. Returns the owning MountPoint.
MountPoint mount_or_throw(const std::string& source, const std::string& target,
                          const std::string& fstype, unsigned long flags, const std::string& data);

// Attaches `image` to a free loop device (LOOP_CONFIGURE, autoclear: the
// device detaches itself at the last unmount). Keep the returned fd open
// until the filesystem is mounted.
struct LoopDevice {
  std::string path;  // /dev/loopN
  common::UniqueFd fd;
};
LoopDevice attach_loop_device(const std::string& image, bool read_only);

// Creates `path` and its parents (mode 0755); no error if it exists.
void make_dirs(const std::string& path);
// rm -rf, not crossing mount points (refuses to descend into a mounted
// directory, so a leftover mount never loses its data). Returns false if
// something could not be removed.
bool remove_tree(const std::string& path);

}  // namespace ember::agent
