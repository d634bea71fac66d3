#include "vmm/loader/bzimage_loader.h"

#include <cstdio>
#include <cstring>

#include "vmm/arch/x86_64/layout.h"
#include "vmm/common/error.h"

namespace ember::vmm::loader {
namespace {

constexpr uint64_t kSetupHeaderOffset = 0x1f1;
constexpr uint16_t kMinProtocol64 = 0x020c;

[[noreturn]] void bad(const ImageFile& file, const std::string& why) {
  throw common::Error("load kernel " + file.path() + ": " + why);
}

std::string protocol_text(uint16_t version) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%u.%02u", version >> 8, version & 0xff);
  return buf;
}

}  // namespace

std::optional<arch::SetupHeader> read_setup_header(const ImageFile& file) {
  if (file.size() < kSetupHeaderOffset + sizeof(arch::SetupHeader)) return std::nullopt;
  arch::SetupHeader hdr;
  file.read_at(kSetupHeaderOffset, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&hdr), sizeof hdr));
  if (hdr.header != arch::kHdrSMagic || hdr.boot_flag != arch::kBootFlagMagic) return std::nullopt;
  return hdr;
}

std::optional<KernelImage> load_bzimage(const GuestMemory& memory, const ImageFile& file) {
  auto hdr = read_setup_header(file);
  if (!hdr) return std::nullopt;
  if (hdr->version < kMinProtocol64 || !(hdr->xloadflags & arch::kXlfKernel64)) {
    bad(file, "bzImage with boot protocol " + protocol_text(hdr->version) +
                  " has no 64-bit entry point (needs protocol 2.12+ with XLF_KERNEL_64)");
  }
  if (!(hdr->loadflags & arch::kLoadedHigh)) bad(file, "bzImage is not a high-loaded (zImage) kernel");
  // boot.rst: "setup_sects ... If this field is 0, the real value is 4."
  uint64_t setup_sects = hdr->setup_sects == 0 ? 4 : hdr->setup_sects;
  uint64_t setup_size = (setup_sects + 1) * 512;
  if (setup_size >= file.size()) bad(file, "bzImage has no protected-mode kernel after its setup code");
  uint64_t kernel_size = file.size() - setup_size;
  uint64_t load = hdr->code32_start;
  if (load < arch::kHimemStart) {
    bad(file, "bzImage load address " + to_string(GuestAddress(load)) + " is below 1 MiB");
  }
  GuestAddress start(load);
  if (!memory.contains(start, kernel_size)) {
    bad(file, "bzImage (" + std::to_string(kernel_size) + " bytes at " + to_string(start) +
                  ") does not fit in guest memory");
  }
  file.read_at(setup_size, memory.slice(start, kernel_size));
  KernelImage image;
  image.protocol = arch::BootProtocol::kLinux64;
  image.entry = start + arch::kBzImage64BitEntryOffset;
  image.start = start;
  image.end = start + kernel_size;
  image.setup_header = *hdr;
  return image;
}

}  // namespace ember::vmm::loader
