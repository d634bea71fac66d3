#include "vmm/loader/cmdline.h"

#include <cstdio>

#include "vmm/common/error.h"

namespace ember::vmm::loader {

void KernelCmdline::append(const std::string& text) {
  for (unsigned char c : text) {
    if (c < 0x20 || c > 0x7e) throw common::Error("kernel command line: invalid character in \"" + text + "\"");
  }
  std::string joined = text_;
  if (!joined.empty() && !text.empty()) joined += ' ';
  joined += text;
  if (joined.size() + 1 > capacity_) {
    throw common::Error("kernel command line is too long: " + std::to_string(joined.size() + 1) +
                        " bytes with the NUL, at most " + std::to_string(capacity_));
  }
  text_ = std::move(joined);
}

void KernelCmdline::add_virtio_mmio_device(uint64_t size, uint64_t base, uint32_t gsi) {
  char buf[96];
  std::string size_text = size % 1024 == 0 ? std::to_string(size / 1024) + "K" : std::to_string(size);
  std::snprintf(buf, sizeof buf, "virtio_mmio.device=%s@0x%llx:%u", size_text.c_str(),
                static_cast<unsigned long long>(base), gsi);
  append(buf);
}

}  // namespace ember::vmm::loader
