// Loads a kernel image of whichever supported format into guest memory:
// ELF vmlinux first (64-bit Linux boot, or PVH with the Xen note), then bzImage.
#pragma once

#include <string>

#include "vmm/loader/kernel_image.h"

namespace ember::vmm::loader {

// Throws common::Error naming the path: missing file, unknown format, or a
// kernel that does not fit.
KernelImage load_kernel(const GuestMemory& memory, const std::string& path);

}  // namespace ember::vmm::loader
