// What loading a kernel produced: how to enter it and what it occupies.
#pragma once

#include <optional>

#include "vmm/arch/x86_64/boot_info.h"
#include "vmm/arch/x86_64/boot_params.h"
#include "vmm/vstate/guest_memory.h"

namespace ember::vmm::loader {

struct KernelImage {
  arch::BootProtocol protocol = arch::BootProtocol::kLinux64;
  // 64-bit entry (Linux) or 32-bit PVH entry.
  GuestAddress entry;
  // [start, end) of guest memory the image occupies.
  GuestAddress start;
  GuestAddress end;
  // bzImage only: its setup header, the seed of the zero page.
  std::optional<arch::SetupHeader> setup_header;
};

}  // namespace ember::vmm::loader
