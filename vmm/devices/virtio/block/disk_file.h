// The file behind a virtio-blk device (reference/firecracker-compat.md §4):
// opened O_RDWR, or O_RDONLY for read-only drives, never O_DIRECT; capacity
// in 512-byte sectors with a partial trailing sector hidden; the 20-byte
// GET_ID string built from the file's st_dev, st_rdev and st_ino.
#pragma once

#include <sys/uio.h>

#include <array>
#include <cstdint>
#include <span>
#include <string>

#include "vmm/common/unique_fd.h"

namespace ember::vmm::virtio {

inline constexpr uint64_t kSectorSize = 512;
inline constexpr size_t kBlockIdBytes = 20;  // virtio 1.2 §5.2.6: VIRTIO_BLK_ID_BYTES

class DiskFile {
 public:
  // Throws common::Error: `open drive "rootfs" at /x.img: No such file or directory`.
  static DiskFile open(const std::string& drive_id, const std::string& path, bool read_only);

  int fd() const { return fd_.get(); }
  const std::string& path() const { return path_; }
  bool read_only() const { return read_only_; }
  uint64_t sectors() const { return sectors_; }
  const std::array<uint8_t, kBlockIdBytes>& id() const { return id_; }

  // Whole transfers at `offset`, retried on short counts and EINTR. Return 0
  // or -errno (EIO when the file ends early).
  int read_at(std::span<const iovec> iov, uint64_t offset) const;
  int write_at(std::span<const iovec> iov, uint64_t offset) const;
  int flush() const;

 private:
  common::UniqueFd fd_;
  std::string path_;
  bool read_only_ = false;
  uint64_t sectors_ = 0;
  std::array<uint8_t, kBlockIdBytes> id_{};
};

}  // namespace ember::vmm::virtio
