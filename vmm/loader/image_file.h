// A kernel or initrd file opened for loading: size and exact positional reads
// with errors that name the file.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "vmm/common/unique_fd.h"

namespace ember::vmm::loader {

class ImageFile {
 public:
  // Throws common::SystemError naming `what` and `path`, e.g.
  // `open kernel image /x/vmlinux: No such file or directory`.
  ImageFile(const std::string& path, const std::string& what);

  const std::string& path() const { return path_; }
  const std::string& what() const { return what_; }
  uint64_t size() const { return size_; }

  // Reads exactly out.size() bytes at `offset`; throws on a short file.
  void read_at(uint64_t offset, std::span<uint8_t> out) const;

 private:
  std::string path_;
  std::string what_;
  common::UniqueFd fd_;
  uint64_t size_ = 0;
};

}  // namespace ember::vmm::loader
