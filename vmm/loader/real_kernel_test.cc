// The loaders on real kernels, host-side only (loaded into guest memory, never
// run): ember's own guest kernel (vmlinux with the PVH note, and its bzImage,
// built by the `guest-image` target) and Debian's cloud bzImage (downloaded by
// fetch_debian_kernel.sh). Checks entry points, load addresses and the zero
// page a boot would hand them.
#include <elf.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "tests/harness/command.h"
#include "tests/harness/qemu_guest.h"
#include "tests/harness/require.h"
#include "vmm/arch/x86_64/layout.h"
#include "vmm/arch/x86_64/linux_boot.h"
#include "vmm/arch/x86_64/memory_map.h"
#include "vmm/loader/bzimage_loader.h"
#include "vmm/loader/image_file.h"
#include "vmm/loader/initrd_loader.h"
#include "vmm/loader/kernel_loader.h"

namespace ember::vmm::loader {
namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> file_bytes(const fs::path& path, uint64_t offset, size_t len) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(offset));
  std::vector<uint8_t> out(len);
  in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(len));
  return out;
}

GuestMemory memory_of(uint64_t mib) { return GuestMemory::anonymous(arch::arch_memory_regions(mib << 20)); }

fs::path debian_kernel() {
  static fs::path path = [] {
    try {
      std::string out = testing::run_checked(
          {std::string(EMBER_SOURCE_DIR) + "/vmm/loader/fetch_debian_kernel.sh"}, std::chrono::seconds(300));
      while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
      size_t nl = out.rfind('\n');
      return fs::path(nl == std::string::npos ? out : out.substr(nl + 1));
    } catch (const std::exception&) {
      return fs::path();
    }
  }();
  return path;
}

// What every bzImage boot must satisfy: the image's own setup header at
// 0x1f1, the protected-mode kernel at 1 MiB byte for byte, the 64-bit entry
// at +0x200, and a zero page seeded from the header with ember's fields.
void check_bzimage(const fs::path& path) {
  GuestMemory mem = memory_of(512);
  KernelImage k = load_kernel(mem, path.string());
  ImageFile file(path.string(), "kernel image");
  auto hdr = read_setup_header(file);
  ASSERT_TRUE(hdr);
  EXPECT_GE(+hdr->version, 0x020c);
  EXPECT_TRUE(hdr->xloadflags & arch::kXlfKernel64);
  EXPECT_EQ(k.protocol, arch::BootProtocol::kLinux64);
  EXPECT_EQ(k.start, GuestAddress(hdr->code32_start));
  EXPECT_EQ(k.start, GuestAddress(0x100000));
  EXPECT_EQ(k.entry, GuestAddress(0x100200));
  uint64_t setup = (uint64_t{hdr->setup_sects == 0 ? 4u : hdr->setup_sects} + 1) * 512;
  EXPECT_EQ(k.end.raw() - k.start.raw(), file.size() - setup);
  for (uint64_t off : {uint64_t{0}, uint64_t{0x200}, (file.size() - setup) / 2, file.size() - setup - 16}) {
    std::vector<uint8_t> in_guest(16);
    mem.read(k.start + off, in_guest);
    EXPECT_EQ(in_guest, file_bytes(path, setup + off, 16)) << "offset " << off;
  }
  // The kernel's decompression buffer (init_size from the aligned load
  // address) must fit in this guest.
  uint64_t runtime_start = (k.start.raw() + hdr->kernel_alignment - 1) & ~uint64_t{hdr->kernel_alignment - 1};
  EXPECT_TRUE(mem.contains(GuestAddress(runtime_start), hdr->init_size));

  arch::BootInfo info;
  info.cmdline_addr = GuestAddress(arch::kCmdlineStart);
  info.cmdline_size = 42;
  info.initrd = arch::InitrdRegion{GuestAddress(0x10000000), 12345};
  info.setup_header = k.setup_header;
  arch::BootParams zp = arch::build_zero_page(mem, info);
  EXPECT_EQ(+zp.hdr.boot_flag, 0xaa55);
  EXPECT_EQ(+zp.hdr.header, 0x53726448u);
  EXPECT_EQ(+zp.hdr.type_of_loader, 0xff);
  EXPECT_EQ(+zp.hdr.cmd_line_ptr, 0x20000u);
  EXPECT_EQ(+zp.hdr.cmdline_size, 42u);
  EXPECT_EQ(+zp.hdr.ramdisk_image, 0x10000000u);
  EXPECT_EQ(+zp.hdr.ramdisk_size, 12345u);
  EXPECT_EQ(+zp.hdr.version, +hdr->version);
  EXPECT_EQ(+zp.hdr.setup_sects, +hdr->setup_sects);
  EXPECT_EQ(+zp.hdr.kernel_alignment, +hdr->kernel_alignment);
  EXPECT_EQ(+zp.hdr.init_size, +hdr->init_size);
  EXPECT_EQ(+zp.hdr.pref_address, +hdr->pref_address);
  EXPECT_EQ(+zp.hdr.xloadflags, +hdr->xloadflags);
  ASSERT_EQ(zp.e820_entries, 4);
  EXPECT_EQ(+zp.e820_table[3].addr, 0x100000u);
  EXPECT_EQ(+zp.e820_table[3].size, (512u << 20) - 0x100000);
}

TEST(RealKernels, DebianCloudBzImageLoadsThroughThe64BitEntry) {
  fs::path kernel = debian_kernel();
  EMBER_REQUIRE(!kernel.empty() && fs::exists(kernel),
                "Debian's linux-image-cloud-amd64 (vmm/loader/fetch_debian_kernel.sh failed: no apt mirror?)");
  check_bzimage(kernel);
}

TEST(RealKernels, EmberGuestBzImageLoadsThroughThe64BitEntry) {
  fs::path kernel = testing::guest_image_dir() / "bzImage";
  EMBER_REQUIRE(fs::exists(kernel), "the guest image (build the guest-image target): " + kernel.string());
  check_bzimage(kernel);
}

TEST(RealKernels, EmberGuestVmlinuxLoadsItsSegmentsAndUsesPvh) {
  fs::path kernel = testing::guest_image_dir() / "vmlinux";
  EMBER_REQUIRE(fs::exists(kernel), "the guest image (build the guest-image target): " + kernel.string());
  GuestMemory mem = memory_of(256);
  KernelImage k = load_kernel(mem, kernel.string());

  auto eh_bytes = file_bytes(kernel, 0, sizeof(Elf64_Ehdr));
  Elf64_Ehdr eh;
  std::memcpy(&eh, eh_bytes.data(), sizeof eh);
  uint64_t lowest = ~0ULL, highest = 0;
  for (uint16_t i = 0; i < eh.e_phnum; ++i) {
    auto ph_bytes = file_bytes(kernel, eh.e_phoff + i * sizeof(Elf64_Phdr), sizeof(Elf64_Phdr));
    Elf64_Phdr ph;
    std::memcpy(&ph, ph_bytes.data(), sizeof ph);
    if (ph.p_type != PT_LOAD) continue;
    lowest = std::min(lowest, ph.p_paddr);
    highest = std::max(highest, ph.p_paddr + ph.p_memsz);
    // Each segment's bytes are at its physical address.
    size_t n = static_cast<size_t>(std::min<uint64_t>(ph.p_filesz, 64));
    std::vector<uint8_t> in_guest(n);
    mem.read(GuestAddress(ph.p_paddr), in_guest);
    EXPECT_EQ(in_guest, file_bytes(kernel, ph.p_offset, n)) << "segment " << i;
  }
  EXPECT_EQ(k.start, GuestAddress(lowest));
  EXPECT_EQ(k.end, GuestAddress(highest));
  EXPECT_GE(k.start.raw(), arch::kHimemStart);
  // ember's kernel config has CONFIG_PVH: the Xen note gives a 32-bit entry
  // inside the kernel, different from the ELF's 64-bit e_entry.
  EXPECT_EQ(k.protocol, arch::BootProtocol::kPvh);
  EXPECT_NE(k.entry, GuestAddress(eh.e_entry));
  EXPECT_GE(k.entry, k.start);
  EXPECT_LT(k.entry, k.end);
  EXPECT_FALSE(k.setup_header);

  // The zero page ember would write for a 64-bit entry into this vmlinux.
  arch::BootInfo info;
  info.cmdline_addr = GuestAddress(arch::kCmdlineStart);
  info.cmdline_size = 10;
  arch::BootParams zp = arch::build_zero_page(mem, info);
  EXPECT_EQ(+zp.hdr.kernel_alignment, 0x1000000u);
  EXPECT_EQ(+zp.hdr.type_of_loader, 0xff);
  EXPECT_EQ(+zp.hdr.ramdisk_size, 0u);
}

TEST(RealKernels, InitrdOfTheGuestImageFitsAboveTheKernel) {
  fs::path kernel = testing::guest_image_dir() / "vmlinux";
  fs::path initrd = testing::guest_image_dir() / "initramfs-smoke.cpio";
  EMBER_REQUIRE(fs::exists(kernel) && fs::exists(initrd), "the guest image (build the guest-image target)");
  GuestMemory mem = memory_of(256);
  KernelImage k = load_kernel(mem, kernel.string());
  arch::InitrdRegion r = load_initrd(mem, initrd.string(), k.end);
  EXPECT_EQ(r.size, fs::file_size(initrd));
  EXPECT_GE(r.address, k.end);
  EXPECT_EQ(r.address.raw() % 4096, 0u);
  std::vector<uint8_t> head(6);
  mem.read(r.address, head);
  EXPECT_EQ(head, file_bytes(initrd, 0, 6));
}

}  // namespace
}  // namespace ember::vmm::loader
