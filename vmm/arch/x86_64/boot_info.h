// What the loaders produced that the boot-protocol writers (zero page, PVH
// start info) need to tell the guest.
#pragma once

#include <cstdint>
#include <optional>

#include "vmm/arch/x86_64/boot_params.h"
#include "vmm/vstate/guest_memory.h"

namespace ember::vmm::arch {

enum class BootProtocol {
  kLinux64,  // 64-bit Linux boot protocol: long mode, RSI = zero page
  kPvh,      // PVH: 32-bit protected mode, RBX = hvm_start_info
};

struct InitrdRegion {
  GuestAddress address;
  uint64_t size = 0;
};

struct BootInfo {
  GuestAddress cmdline_addr;
  uint64_t cmdline_size = 0;  // including the trailing NUL
  std::optional<InitrdRegion> initrd;
  // The image's own setup header (bzImage); vmlinux has none.
  std::optional<SetupHeader> setup_header;
};

}  // namespace ember::vmm::arch
