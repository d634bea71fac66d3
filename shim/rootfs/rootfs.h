// A container's root filesystem as a block device for its VM (reference §5,
// DESIGN.md "Rootfs"). virtio-blk is the only way into an ember guest
// (Firecracker has no virtio-fs), so:
//
// * devmapper snapshots (`{type: ext4|xfs, source: /dev/mapper/...}`) are
//   attached as they are;
// * overlayfs snapshots (`{type: overlay, options: [lowerdir=..., upperdir=...]}`)
//   are mounted at <bundle>/rootfs, copied into a fresh ext4 image with
//   `mkfs.ext4 -d` (sized from the content plus slack, sparse), and
//   unmounted again; single-layer `bind` snapshots and `ctr run --rootfs`
//   directories are copied straight from their directory;
// * the image lives in the bundle's `work` directory (persistent storage,
//   not the tmpfs of the bundle), and is removed by cleanup_rootfs() at
//   Delete and by the `delete` subcommand after a crash.
//
// The guest finds its drive by virtio-blk serial (block_serial()), which is
// the same for both backends because both serve ember's block device.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "shim/log/shim_log.h"

namespace ember::shim {

struct RootfsMount {
  std::string type;
  std::string source;
  std::string target;
  std::vector<std::string> options;
};

struct RootfsDisk {
  std::string path;                        // image file or block device backing the drive
  std::string fstype = "ext4";             // for the guest mount
  std::vector<std::string> mount_options;  // for the guest mount
  bool owned = false;                      // we built it: removed by cleanup_rootfs()
  bool read_only = false;
  uint64_t size_bytes = 0;
};

struct RootfsRequest {
  std::vector<RootfsMount> mounts;  // CreateTaskRequest.rootfs
  std::string bundle;               // <bundle>/rootfs is the mount point
  std::string spec_root_path;       // config.json root.path (used when there are no mounts)
  std::string image_path;           // where to build an image
  uint64_t slack_bytes = 256ull << 20;
};

// Builds or selects the disk. Throws common::Error naming the mount, the
// path and the tool output when something fails; nothing stays mounted then.
RootfsDisk prepare_rootfs(const RootfsRequest& request, ShimLog& log);

// Unmounts <bundle>/rootfs if something is mounted there and removes
// `image_path`. Idempotent; never throws (problems are logged).
void cleanup_rootfs(const std::string& bundle, const std::string& image_path, ShimLog& log);

struct TreeUsage {
  uint64_t bytes = 0;   // data and directory blocks, 4 KiB granularity, hard links once
  uint64_t inodes = 0;
};
// Walks `dir` without following symlinks. Throws common::Error naming the path.
TreeUsage measure_tree(const std::string& dir);

// The ext4 image size for `usage` plus `slack_bytes`, MiB-aligned.
uint64_t ext4_image_size(const TreeUsage& usage, uint64_t slack_bytes);

// mkfs.ext4 -d `dir` into a new sparse `image` of `size_bytes`.
void build_ext4_image(const std::string& dir, const std::string& image, uint64_t size_bytes, const TreeUsage& usage);

// The 20-byte virtio-blk ID ember's block device reports for `path` (decimal
// st_dev, st_rdev and st_ino, as Firecracker does), as the guest reads it
// from /sys/block/vdX/serial. Throws common::SystemError naming the path.
std::string block_serial(const std::string& path);

// True when `path` is a mount point (its st_dev differs from its parent's,
// or /proc/self/mountinfo lists it).
bool is_mount_point(const std::string& path);

}  // namespace ember::shim
