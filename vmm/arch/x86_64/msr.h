// Model-specific registers set on every vCPU at boot (reference §2.4).
#pragma once

#include <cstdint>
#include <vector>

namespace ember::vmm::arch {

inline constexpr uint32_t kMsrIa32Tsc = 0x10;
inline constexpr uint32_t kMsrIa32ArchCapabilities = 0x10a;
inline constexpr uint32_t kMsrIa32SysenterCs = 0x174;
inline constexpr uint32_t kMsrIa32SysenterEsp = 0x175;
inline constexpr uint32_t kMsrIa32SysenterEip = 0x176;
inline constexpr uint32_t kMsrIa32MiscEnable = 0x1a0;
inline constexpr uint32_t kMsrMtrrDefType = 0x2ff;
inline constexpr uint32_t kMsrStar = 0xc0000081;
inline constexpr uint32_t kMsrLstar = 0xc0000082;
inline constexpr uint32_t kMsrCstar = 0xc0000083;
inline constexpr uint32_t kMsrSyscallMask = 0xc0000084;
inline constexpr uint32_t kMsrKernelGsBase = 0xc0000102;

inline constexpr uint64_t kMiscEnableFastString = 1;
// MTRRdefType: MTRRs enabled (bit 11), default type write-back (6).
inline constexpr uint64_t kMtrrDefTypeEnabledWriteBack = (1ULL << 11) | 6;

struct MsrEntry {
  uint32_t index = 0;
  uint64_t data = 0;
  bool operator==(const MsrEntry&) const = default;
};

std::vector<MsrEntry> boot_msr_entries();

}  // namespace ember::vmm::arch
