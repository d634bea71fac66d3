// bzImage kernels through the 64-bit boot protocol (boot.rst "64-bit Boot
// Protocol"): the protected-mode part is copied to code32_start (1 MiB) and
// entered at +0x200. Needs boot protocol 2.12+ with XLF_KERNEL_64.
#pragma once

#include <optional>

#include "vmm/loader/image_file.h"
#include "vmm/loader/kernel_image.h"

namespace ember::vmm::loader {

// The image's setup header, nullopt when `file` has no "HdrS" header.
std::optional<arch::SetupHeader> read_setup_header(const ImageFile& file);

// nullopt when `file` is not a bzImage; throws common::Error naming the file
// when it is one ember cannot boot (too old, no 64-bit entry, too big).
std::optional<KernelImage> load_bzimage(const GuestMemory& memory, const ImageFile& file);

}  // namespace ember::vmm::loader
