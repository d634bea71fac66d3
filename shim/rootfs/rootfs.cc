#include "shim/rootfs/rootfs.h"

#include <ftw.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <utility>

#include "shim/util/run_command.h"
#include "vmm/common/error.h"

namespace ember::shim {

namespace {

constexpr uint64_t kBlock = 4096;
constexpr uint64_t kMiB = 1ull << 20;

uint64_t round_up(uint64_t v, uint64_t to) { return (v + to - 1) / to * to; }

std::string join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : sep) + p;
  return out;
}

// nftw has no user pointer: one walk at a time.
std::mutex walk_mutex;
TreeUsage* walk_usage = nullptr;
std::set<std::pair<dev_t, ino_t>>* walk_links = nullptr;

int walk_entry(const char*, const struct stat* st, int type, struct FTW*) {
  if (type == FTW_NS || type == FTW_DNR) return 0;
  if (S_ISREG(st->st_mode) && st->st_nlink > 1) {
    if (!walk_links->insert({st->st_dev, st->st_ino}).second) return 0;
  }
  walk_usage->inodes += 1;
  if (S_ISREG(st->st_mode)) {
    walk_usage->bytes += round_up(static_cast<uint64_t>(st->st_size), kBlock);
  } else if (S_ISDIR(st->st_mode)) {
    walk_usage->bytes += kBlock;
  } else if (S_ISLNK(st->st_mode) && st->st_size >= 60) {
    walk_usage->bytes += kBlock;  // longer targets than fit in the inode take a block
  }
  return 0;
}

struct MountFlags {
  unsigned long flags = 0;
  std::vector<std::string> data;
};

MountFlags split_mount_options(const std::vector<std::string>& options) {
  static const std::pair<const char*, unsigned long> kFlags[] = {
      {"ro", MS_RDONLY}, {"nosuid", MS_NOSUID}, {"nodev", MS_NODEV}, {"noexec", MS_NOEXEC},
      {"noatime", MS_NOATIME}, {"nodiratime", MS_NODIRATIME}, {"relatime", MS_RELATIME},
      {"bind", MS_BIND}, {"rbind", MS_BIND | MS_REC}, {"sync", MS_SYNCHRONOUS}};
  MountFlags out;
  for (const auto& o : options) {
    if (o == "rw" || o == "defaults") continue;
    bool matched = false;
    for (const auto& [name, flag] : kFlags) {
      if (o == name) {
        out.flags |= flag;
        matched = true;
      }
    }
    if (!matched) out.data.push_back(o);
  }
  return out;
}

bool is_block_device(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISBLK(st.st_mode);
}

void unmount(const std::string& target) {
  if (::umount2(target.c_str(), 0) == 0) return;
  if (errno == EINVAL || errno == ENOENT) return;  // not mounted
  if (::umount2(target.c_str(), MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT) {
    common::throw_errno("unmount " + target);
  }
}

RootfsDisk image_from_directory(const std::string& dir, const RootfsRequest& request, ShimLog& log) {
  auto t0 = std::chrono::steady_clock::now();
  TreeUsage usage = measure_tree(dir);
  uint64_t size = ext4_image_size(usage, request.slack_bytes);
  build_ext4_image(dir, request.image_path, size, usage);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  log.info("rootfs image built", {{"source", dir}, {"image", request.image_path}, {"content_bytes", usage.bytes},
                                  {"inodes", usage.inodes}, {"image_bytes", size}, {"duration_ms", ms}});
  RootfsDisk disk;
  disk.path = request.image_path;
  disk.fstype = "ext4";
  disk.owned = true;
  disk.size_bytes = size;
  return disk;
}

}  // namespace

TreeUsage measure_tree(const std::string& dir) {
  std::lock_guard lock(walk_mutex);
  TreeUsage usage;
  std::set<std::pair<dev_t, ino_t>> links;
  walk_usage = &usage;
  walk_links = &links;
  int rc = ::nftw(dir.c_str(), walk_entry, 64, FTW_PHYS | FTW_MOUNT);
  int err = errno;
  walk_usage = nullptr;
  walk_links = nullptr;
  if (rc != 0) throw common::SystemError(err, "measure rootfs " + dir);
  return usage;
}

uint64_t ext4_image_size(const TreeUsage& usage, uint64_t slack_bytes) {
  // ext4 metadata: inode tables (256 B/inode, twice the inodes we create),
  // bitmaps and group descriptors (~2 %), plus a fixed floor.
  uint64_t data = usage.bytes + usage.bytes / 16;
  uint64_t meta = usage.inodes * 2 * 256 + 8 * kMiB;
  uint64_t size = round_up(data + meta + slack_bytes, kMiB);
  return std::max<uint64_t>(size, 32 * kMiB);
}

void build_ext4_image(const std::string& dir, const std::string& image, uint64_t size_bytes, const TreeUsage& usage) {
  ::unlink(image.c_str());
  {
    std::ofstream create(image, std::ios::binary | std::ios::trunc);
    if (!create) common::throw_errno("create rootfs image " + image);
  }
  if (::truncate(image.c_str(), static_cast<off_t>(size_bytes)) < 0) {
    int err = errno;
    ::unlink(image.c_str());
    throw common::SystemError(err, "size rootfs image " + image);
  }
  // Enough inodes for the content and growth, never fewer than mkfs would pick.
  uint64_t inodes = std::max<uint64_t>(usage.inodes * 2 + 8192, size_bytes / 16384);
  // No journal: the image is the container's scratch disk, discarded at
  // delete; skipping it makes mkfs and the guest's writes cheaper.
  std::vector<std::string> argv = {"mkfs.ext4", "-q", "-F", "-t", "ext4", "-m", "0", "-O", "^has_journal",
                                   "-N", std::to_string(inodes), "-E", "lazy_itable_init=1,nodiscard",
                                   "-d", dir, image};
  try {
    run_checked("build rootfs image " + image + " from " + dir, argv);
  } catch (...) {
    ::unlink(image.c_str());
    throw;
  }
}

std::string block_serial(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) < 0) common::throw_errno("stat drive " + path);
  std::string id = std::to_string(st.st_dev) + std::to_string(st.st_rdev) + std::to_string(st.st_ino);
  if (id.size() > 20) id.resize(20);
  return id;
}

bool is_mount_point(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, devno, root, mount_point;
    fields >> id >> parent >> devno >> root >> mount_point;
    // mountinfo escapes spaces etc. as \040; paths we create have none.
    if (mount_point == path) return true;
  }
  return false;
}

RootfsDisk prepare_rootfs(const RootfsRequest& request, ShimLog& log) {
  if (request.mounts.empty()) {
    // `ctr run --rootfs DIR`: containerd passes no mounts, the spec names the root.
    std::string root = request.spec_root_path;
    if (root.empty()) throw common::Error("no rootfs mounts and no root.path in config.json");
    if (root[0] != '/') root = request.bundle + "/" + root;
    return image_from_directory(root, request, log);
  }
  if (request.mounts.size() > 1) {
    throw common::Error("rootfs: " + std::to_string(request.mounts.size()) +
                        " mounts given, only one (overlay, bind or a block device) is supported");
  }
  const RootfsMount& m = request.mounts.front();
  MountFlags flags = split_mount_options(m.options);
  if ((m.type == "ext4" || m.type == "xfs" || m.type == "btrfs") && is_block_device(m.source)) {
    // devmapper: the snapshot is a block device already; the guest mounts it.
    RootfsDisk disk;
    disk.path = m.source;
    disk.fstype = m.type;
    disk.mount_options = flags.data;
    disk.read_only = (flags.flags & MS_RDONLY) != 0;
    disk.owned = false;
    log.info("rootfs block device attached as is", {{"device", m.source}, {"fstype", m.type}});
    return disk;
  }
  if (m.type == "bind" || (flags.flags & MS_BIND)) {
    return image_from_directory(m.source, request, log);
  }
  if (m.type == "overlay") {
    std::string target = request.bundle + "/rootfs";
    std::string data = join(flags.data, ",");
    if (data.size() >= 4096) {
      throw common::Error("rootfs overlay options are " + std::to_string(data.size()) +
                          " bytes, longer than a mount(2) page (too many layers)");
    }
    ::mkdir(target.c_str(), 0755);
    if (::mount("overlay", target.c_str(), "overlay", flags.flags | MS_RDONLY, data.c_str()) < 0) {
      common::throw_errno("mount overlay rootfs at " + target + " (" + data + ")");
    }
    try {
      RootfsDisk disk = image_from_directory(target, request, log);
      unmount(target);
      return disk;
    } catch (...) {
      try {
        unmount(target);
      } catch (...) {
      }
      throw;
    }
  }
  throw common::Error("rootfs mount type \"" + m.type + "\" (source " + m.source +
                      ") is not supported: expected overlay, bind, or an ext4/xfs block device");
}

void cleanup_rootfs(const std::string& bundle, const std::string& image_path, ShimLog& log) {
  if (!bundle.empty()) {
    std::string target = bundle + "/rootfs";
    try {
      if (is_mount_point(target)) unmount(target);
    } catch (const std::exception& e) {
      log.warn("rootfs cleanup", {{"error", e.what()}});
    }
  }
  if (!image_path.empty() && ::unlink(image_path.c_str()) < 0 && errno != ENOENT) {
    log.warn("rootfs cleanup", {{"error", "remove " + image_path + ": " + common::errno_text(errno)}});
  }
}

}  // namespace ember::shim
