#include "vmm/loader/initrd_loader.h"

#include "vmm/common/error.h"
#include "vmm/loader/image_file.h"

namespace ember::vmm::loader {

arch::InitrdRegion load_initrd(const GuestMemory& memory, const std::string& path, GuestAddress kernel_end) {
  constexpr uint64_t kPageSize = 4096;
  ImageFile file(path, "initrd");
  if (memory.regions().empty()) throw common::Error("load initrd " + path + ": no guest memory");
  const GuestRegion& low = memory.regions().front();
  uint64_t size = file.size();
  uint64_t top = low.end().raw();
  if (size == 0) throw common::Error("load initrd " + path + ": file is empty");
  if (size > top || ((top - size) & ~(kPageSize - 1)) < kernel_end.raw()) {
    throw common::Error("load initrd " + path + ": " + std::to_string(size) +
                        " bytes do not fit in guest memory above the kernel (ends at " + to_string(kernel_end) +
                        ", low memory ends at " + to_string(GuestAddress(top)) + ")");
  }
  GuestAddress addr((top - size) & ~(kPageSize - 1));
  file.read_at(0, memory.slice(addr, size));
  return {addr, size};
}

}  // namespace ember::vmm::loader
