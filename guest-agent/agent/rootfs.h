// A container's root filesystem, assembled from the Rootfs of CreateContainer:
// one writable filesystem mounted as the root, or overlayfs over read-only
// layers (EROFS or ext4) with its upper and work directories on a writable
// filesystem (or a tmpfs). Owns every mount it made; unmount() tears them
// down in reverse order.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "guest-agent/agent/mounts.h"

namespace ember::agent {

struct FilesystemSpec {
  std::string device;  // block device, image file (host mode) or directory ("bind")
  std::string serial;  // virtio-blk serial, instead of device
  std::string fstype;  // "ext4" when empty and the source is a block device or image
  std::vector<std::string> options;
};

struct RootfsSpec {
  std::optional<FilesystemSpec> upper;
  std::vector<FilesystemSpec> lowers;  // topmost first
  bool readonly = false;
};

class RootfsMount {
 public:
  RootfsMount() = default;
  RootfsMount(RootfsMount&&) = default;
  RootfsMount& operator=(RootfsMount&&) = default;
  ~RootfsMount();

  // Mounts helper filesystems under `work_dir` (created) and the root at
  // `target` (created). On failure everything mounted so far is undone and
  // the error names the step.
  static RootfsMount mount(const RootfsSpec& spec, const std::string& work_dir,
                           const std::string& target);

  // Unmounts in reverse order; throws with every failure in the message.
  void unmount();
  bool mounted() const { return !mounts_.empty(); }
  // Block devices used (for flushing their cache after unmount).
  const std::vector<std::string>& block_devices() const { return block_devices_; }

 private:
  // Mounts one filesystem at `target`; read_only forces MS_RDONLY.
  void mount_filesystem(const FilesystemSpec& fs, const std::string& target, bool read_only);

  std::vector<MountPoint> mounts_;
  std::vector<std::string> block_devices_;
};

}  // namespace ember::agent
