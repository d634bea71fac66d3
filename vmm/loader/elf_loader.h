// Uncompressed ELF64 kernels (vmlinux, payloads): PT_LOAD segments copied to
// their physical addresses (at or above 1 MiB); PVH boot when a PT_NOTE
// carries Xen's XEN_ELFNOTE_PHYS32_ENTRY.
#pragma once

#include <optional>

#include "vmm/loader/image_file.h"
#include "vmm/loader/kernel_image.h"

namespace ember::vmm::loader {

// nullopt when `file` does not start with the ELF magic; throws
// common::Error naming the file for a malformed or unloadable ELF.
std::optional<KernelImage> load_elf(const GuestMemory& memory, const ImageFile& file);

}  // namespace ember::vmm::loader
