#include "vmm/arch/x86_64/msr.h"

namespace ember::vmm::arch {

std::vector<MsrEntry> boot_msr_entries() {
  return {
      {kMsrIa32SysenterCs, 0},
      {kMsrIa32SysenterEsp, 0},
      {kMsrIa32SysenterEip, 0},
      // x86_64 syscall entry MSRs start cleared; the kernel programs them.
      {kMsrStar, 0},
      {kMsrCstar, 0},
      {kMsrKernelGsBase, 0},
      {kMsrSyscallMask, 0},
      {kMsrLstar, 0},
      {kMsrIa32Tsc, 0},
      {kMsrIa32MiscEnable, kMiscEnableFastString},
      {kMsrMtrrDefType, kMtrrDefTypeEnabledWriteBack},
  };
}

}  // namespace ember::vmm::arch
