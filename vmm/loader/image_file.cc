#include "vmm/loader/image_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "vmm/common/error.h"

namespace ember::vmm::loader {

ImageFile::ImageFile(const std::string& path, const std::string& what)
    : path_(path), what_(what), fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
  if (!fd_) common::throw_errno("open " + what + " " + path);
  struct stat st {};
  if (::fstat(fd_.get(), &st) < 0) common::throw_errno("stat " + what + " " + path);
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
    throw common::Error("open " + what + " " + path + ": not a regular file");
  }
  size_ = static_cast<uint64_t>(st.st_size);
}

void ImageFile::read_at(uint64_t offset, std::span<uint8_t> out) const {
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::pread(fd_.get(), out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      common::throw_errno("read " + what_ + " " + path_);
    }
    if (n == 0) {
      throw common::Error("read " + what_ + " " + path_ + ": file ends at " + std::to_string(offset + done) +
                          " bytes, " + std::to_string(out.size() - done) + " more expected");
    }
    done += static_cast<size_t>(n);
  }
}

}  // namespace ember::vmm::loader
