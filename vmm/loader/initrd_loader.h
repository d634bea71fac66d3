// The initial ramdisk: copied as is to the top of low RAM (the first memory
// region), page-aligned down, above the kernel.
#pragma once

#include <string>

#include "vmm/arch/x86_64/boot_info.h"
#include "vmm/vstate/guest_memory.h"

namespace ember::vmm::loader {

// Throws common::Error naming the path when it cannot be read or does not
// fit between `kernel_end` and the end of the first region.
arch::InitrdRegion load_initrd(const GuestMemory& memory, const std::string& path, GuestAddress kernel_end);

}  // namespace ember::vmm::loader
