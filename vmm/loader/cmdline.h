// The kernel command line being assembled: boot args, root device, virtio-mmio
// device announcements. Limited to kCmdlineMaxSize bytes including the NUL.
#pragma once

#include <cstdint>
#include <string>

namespace ember::vmm::loader {

class KernelCmdline {
 public:
  explicit KernelCmdline(uint64_t capacity = 2048) : capacity_(capacity) {}

  // Appends `text` separated by a space. Throws common::Error if it holds a
  // NUL or non-printable byte, or the result (with NUL) exceeds the capacity.
  void append(const std::string& text);
  // `virtio_mmio.device=<size>@<base>:<gsi>` (Documentation/admin-guide/kernel-parameters.txt).
  void add_virtio_mmio_device(uint64_t size, uint64_t base, uint32_t gsi);

  const std::string& str() const { return text_; }
  // Bytes the guest reads, including the trailing NUL.
  uint64_t size_with_nul() const { return text_.size() + 1; }

 private:
  uint64_t capacity_;
  std::string text_;
};

}  // namespace ember::vmm::loader
