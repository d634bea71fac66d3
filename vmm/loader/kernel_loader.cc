#include "vmm/loader/kernel_loader.h"

#include "vmm/common/error.h"
#include "vmm/loader/bzimage_loader.h"
#include "vmm/loader/elf_loader.h"
#include "vmm/loader/image_file.h"

namespace ember::vmm::loader {

KernelImage load_kernel(const GuestMemory& memory, const std::string& path) {
  ImageFile file(path, "kernel image");
  if (auto image = load_elf(memory, file)) return *image;
  if (auto image = load_bzimage(memory, file)) return *image;
  throw common::Error("load kernel " + path + ": neither an ELF vmlinux nor a bzImage");
}

}  // namespace ember::vmm::loader
