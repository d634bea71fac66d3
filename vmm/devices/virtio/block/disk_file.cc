#include "vmm/devices/virtio/block/disk_file.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "vmm/common/error.h"

namespace ember::vmm::virtio {
namespace {

using TransferFn = ssize_t (*)(int, const iovec*, int, off_t);

// preadv/pwritev over any number of iovecs, resuming after short transfers.
int transfer(int fd, std::span<const iovec> iov, uint64_t offset, TransferFn fn) {
  std::vector<iovec> rest(iov.begin(), iov.end());
  size_t first = 0;
  while (first < rest.size()) {
    if (rest[first].iov_len == 0) {
      ++first;
      continue;
    }
    int count = static_cast<int>(std::min<size_t>(rest.size() - first, IOV_MAX));
    if (offset > static_cast<uint64_t>(INT64_MAX)) return -EINVAL;
    ssize_t n = fn(fd, rest.data() + first, count, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (n == 0) return -EIO;  // end of file before the request was done
    offset += static_cast<uint64_t>(n);
    size_t left = static_cast<size_t>(n);
    while (left > 0 && first < rest.size()) {
      if (left >= rest[first].iov_len) {
        left -= rest[first].iov_len;
        ++first;
      } else {
        rest[first].iov_base = static_cast<uint8_t*>(rest[first].iov_base) + left;
        rest[first].iov_len -= left;
        left = 0;
      }
    }
  }
  return 0;
}

}  // namespace

DiskFile DiskFile::open(const std::string& drive_id, const std::string& path, bool read_only) {
  std::string what = "open drive \"" + drive_id + "\" at " + path;
  DiskFile disk;
  disk.fd_.reset(::open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC));
  if (!disk.fd_) common::throw_errno(what);
  struct stat st {};
  if (::fstat(disk.fd_.get(), &st) < 0) common::throw_errno(what + ": fstat");
  // Block devices report st_size 0; seeking to the end works for both.
  off_t end = ::lseek(disk.fd_.get(), 0, SEEK_END);
  if (end < 0) common::throw_errno(what + ": find its size");
  disk.path_ = path;
  disk.read_only_ = read_only;
  disk.sectors_ = static_cast<uint64_t>(end) / kSectorSize;
  // Firecracker's device id: the decimal st_dev, st_rdev and st_ino run
  // together, cut to 20 bytes, zero padded.
  std::string id =
      std::to_string(st.st_dev) + std::to_string(st.st_rdev) + std::to_string(st.st_ino);
  std::memcpy(disk.id_.data(), id.data(), std::min(id.size(), kBlockIdBytes));
  return disk;
}

int DiskFile::read_at(std::span<const iovec> iov, uint64_t offset) const {
  return transfer(fd_.get(), iov, offset, ::preadv);
}

int DiskFile::write_at(std::span<const iovec> iov, uint64_t offset) const {
  return transfer(fd_.get(), iov, offset, ::pwritev);
}

int DiskFile::flush() const {
  while (::fsync(fd_.get()) < 0) {
    if (errno != EINTR) return -errno;
  }
  return 0;
}

}  // namespace ember::vmm::virtio
