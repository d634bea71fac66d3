// C layouts of the KVM structures that end in a flexible array, and the
// ioctl numbers that encode their size.
//
// Linux's uapi headers declare those arrays with __DECLARE_FLEX_ARRAY, which
// wraps them in a struct holding an empty struct: size 0 in C, 1 in C++. In
// C++ the array then starts at the wrong offset and _IOW(..., struct ...)
// yields the wrong ioctl number (KVM answers ENOTTY). Use these instead of
// kvm_cpuid2, kvm_msrs, kvm_msr_list and kvm_irq_routing.
#pragma once

#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <cstdint>
#include <vector>

namespace ember::vmm::kvm_abi {

struct Cpuid2 {  // followed by nent x kvm_cpuid_entry2
  uint32_t nent;
  uint32_t padding;
};
struct Msrs {  // followed by nmsrs x kvm_msr_entry
  uint32_t nmsrs;
  uint32_t pad;
};
struct MsrList {  // followed by nmsrs x uint32_t
  uint32_t nmsrs;
};
struct IrqRouting {  // followed by nr x kvm_irq_routing_entry
  uint32_t nr;
  uint32_t flags;
};

inline constexpr unsigned long kGetMsrIndexList = _IOWR(KVMIO, 0x02, MsrList);
inline constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, Cpuid2);
inline constexpr unsigned long kSetGsiRouting = _IOW(KVMIO, 0x6a, IrqRouting);
inline constexpr unsigned long kGetMsrs = _IOWR(KVMIO, 0x88, Msrs);
inline constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, Msrs);
inline constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, Cpuid2);

static_assert(kGetMsrIndexList == 0xc004ae02);
static_assert(kGetSupportedCpuid == 0xc008ae05);
static_assert(kSetGsiRouting == 0x4008ae6a);
static_assert(kGetMsrs == 0xc008ae88);
static_assert(kSetMsrs == 0x4008ae89);
static_assert(kSetCpuid2 == 0x4008ae90);
static_assert(sizeof(kvm_cpuid_entry2) == 40);
static_assert(sizeof(kvm_msr_entry) == 16);
static_assert(sizeof(kvm_irq_routing_entry) == 48);

// A header followed by `count` entries of T, as one zeroed, suitably aligned buffer.
template <typename Header, typename T>
class FlexBuffer {
 public:
  explicit FlexBuffer(size_t count) : words_((sizeof(Header) + count * sizeof(T) + 7) / 8, 0) {}
  Header* header() { return reinterpret_cast<Header*>(words_.data()); }
  T* entries() { return reinterpret_cast<T*>(reinterpret_cast<uint8_t*>(words_.data()) + sizeof(Header)); }

 private:
  std::vector<uint64_t> words_;
};

}  // namespace ember::vmm::kvm_abi
