// Kernel, initrd and command line loading on synthetic images written by the
// test (ELF with and without the PVH note, bzImage headers) and on a real
// payload ELF, into real guest memory.
#include <elf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "vmm/arch/x86_64/layout.h"
#include "vmm/arch/x86_64/memory_map.h"
#include "vmm/common/error.h"
#include "vmm/loader/bzimage_loader.h"
#include "vmm/loader/cmdline.h"
#include "vmm/loader/initrd_loader.h"
#include "vmm/loader/kernel_loader.h"

namespace ember::vmm::loader {
namespace {

namespace fs = std::filesystem;

class LoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ember-loader-XXXXXX";
    ASSERT_TRUE(::mkdtemp(tmpl));
    dir_ = tmpl;
    memory_ = GuestMemory::anonymous(arch::arch_memory_regions(64 << 20));
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::vector<uint8_t>& bytes) {
    std::string path = (dir_ / name).string();
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    return path;
  }

  fs::path dir_;
  GuestMemory memory_;
};

template <typename T>
void put(std::vector<uint8_t>& buf, size_t offset, const T& value) {
  if (buf.size() < offset + sizeof(T)) buf.resize(offset + sizeof(T));
  std::memcpy(buf.data() + offset, &value, sizeof(T));
}

struct Segment {
  uint32_t type = PT_LOAD;
  uint64_t paddr = 0;
  std::vector<uint8_t> data;
  uint64_t memsz = 0;  // 0: data.size()
};

// A minimal ELF64 executable with the given segments.
std::vector<uint8_t> make_elf(uint64_t entry, const std::vector<Segment>& segments, uint8_t elf_class = ELFCLASS64) {
  std::vector<uint8_t> out(sizeof(Elf64_Ehdr) + segments.size() * sizeof(Elf64_Phdr), 0);
  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = elf_class;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_EXEC;
  eh.e_machine = EM_X86_64;
  eh.e_version = EV_CURRENT;
  eh.e_entry = entry;
  eh.e_phoff = sizeof(Elf64_Ehdr);
  eh.e_ehsize = sizeof(Elf64_Ehdr);
  eh.e_phentsize = sizeof(Elf64_Phdr);
  eh.e_phnum = static_cast<uint16_t>(segments.size());
  put(out, 0, eh);
  for (size_t i = 0; i < segments.size(); ++i) {
    const Segment& s = segments[i];
    Elf64_Phdr ph{};
    ph.p_type = s.type;
    ph.p_offset = out.size();
    ph.p_paddr = s.paddr;
    ph.p_vaddr = s.paddr + 0xffffffff80000000ULL;
    ph.p_filesz = s.data.size();
    ph.p_memsz = s.memsz ? s.memsz : s.data.size();
    put(out, sizeof(Elf64_Ehdr) + i * sizeof(Elf64_Phdr), ph);
    out.insert(out.end(), s.data.begin(), s.data.end());
  }
  return out;
}

// Appends one ELF note: header, 4-byte-padded name, 4-byte-padded descriptor.
void add_note(std::vector<uint8_t>& notes, const char* name, uint32_t type, const std::vector<uint8_t>& desc) {
  uint32_t namesz = static_cast<uint32_t>(std::strlen(name) + 1);
  size_t at = notes.size();
  put(notes, at, Elf64_Nhdr{namesz, static_cast<uint32_t>(desc.size()), type});
  at += sizeof(Elf64_Nhdr);
  notes.resize(at + ((namesz + 3) & ~3u), 0);
  std::memcpy(notes.data() + at, name, namesz);
  at = notes.size();
  notes.resize(at + ((desc.size() + 3) & ~size_t{3}), 0);
  std::memcpy(notes.data() + at, desc.data(), desc.size());
}

std::vector<uint8_t> xen_note(uint32_t entry) {
  std::vector<uint8_t> notes;
  // An unrelated note first: the loader must walk past it.
  add_note(notes, "GNU", 1, {0, 0, 0, 0});
  std::vector<uint8_t> desc(4);
  std::memcpy(desc.data(), &entry, 4);
  add_note(notes, "Xen", 18, desc);
  return notes;
}

TEST_F(LoaderTest, ElfSegmentsLandAtTheirPhysicalAddresses) {
  std::vector<uint8_t> code = {0xfa, 0xf4, 0xeb, 0xfd};
  std::vector<uint8_t> data(100, 0xab);
  auto path = write("vmlinux", make_elf(0x1000000, {{PT_LOAD, 0x1000000, code}, {PT_LOAD, 0x1200000, data, 0x3000}}));
  KernelImage k = load_kernel(memory_, path);
  EXPECT_EQ(k.protocol, arch::BootProtocol::kLinux64);
  EXPECT_EQ(k.entry, GuestAddress(0x1000000));
  EXPECT_EQ(k.start, GuestAddress(0x1000000));
  EXPECT_EQ(k.end, GuestAddress(0x1203000));
  EXPECT_FALSE(k.setup_header);
  EXPECT_EQ(memory_.read_obj<uint32_t>(GuestAddress(0x1000000)), 0xfdebf4faU);
  EXPECT_EQ(memory_.read_obj<uint8_t>(GuestAddress(0x1200063)), 0xab);
  EXPECT_EQ(memory_.read_obj<uint8_t>(GuestAddress(0x1200064)), 0) << "bss stays zero";
}

TEST_F(LoaderTest, XenPhys32EntryNoteSelectsPvh) {
  auto path = write("pvh", make_elf(0x1000000, {{PT_LOAD, 0x1000000, {0x90}}, {PT_NOTE, 0, xen_note(0x1000040)}}));
  KernelImage k = load_kernel(memory_, path);
  EXPECT_EQ(k.protocol, arch::BootProtocol::kPvh);
  EXPECT_EQ(k.entry, GuestAddress(0x1000040));
}

TEST_F(LoaderTest, SegmentBelow1MiBIsRejected) {
  auto path = write("low", make_elf(0x1000, {{PT_LOAD, 0x1000, {0x90}}}));
  try {
    load_kernel(memory_, path);
    FAIL();
  } catch (const common::Error& e) {
    EXPECT_NE(std::string(e.what()).find("below 1 MiB"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
  }
}

TEST_F(LoaderTest, SegmentPastGuestMemoryIsRejected) {
  auto path = write("big", make_elf(0x100000, {{PT_LOAD, 0x100000, {0x90}, 128 << 20}}));
  EXPECT_THROW(load_kernel(memory_, path), common::Error);
}

TEST_F(LoaderTest, SegmentOutsideTheFileIsRejected) {
  auto elf = make_elf(0x100000, {{PT_LOAD, 0x100000, {1, 2, 3, 4}}});
  elf.resize(elf.size() - 2);
  EXPECT_THROW(load_kernel(memory_, write("cut", elf)), common::Error);
}

TEST_F(LoaderTest, Elf32IsRejected) {
  EXPECT_THROW(load_kernel(memory_, write("e32", make_elf(0x100000, {{PT_LOAD, 0x100000, {1}}}, ELFCLASS32))),
               common::Error);
}

TEST_F(LoaderTest, UnknownFormatIsAClearError) {
  auto path = write("junk", std::vector<uint8_t>(4096, 0x42));
  try {
    load_kernel(memory_, path);
    FAIL();
  } catch (const common::Error& e) {
    EXPECT_NE(std::string(e.what()).find("neither an ELF vmlinux nor a bzImage"), std::string::npos) << e.what();
  }
}

TEST_F(LoaderTest, MissingFileNamesThePath) {
  try {
    load_kernel(memory_, "/nonexistent/kernel");
    FAIL();
  } catch (const common::SystemError& e) {
    EXPECT_EQ(e.error_code(), ENOENT);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/kernel"), std::string::npos);
  }
}

// A bzImage: 4 setup sectors + the boot sector, then the protected-mode kernel.
std::vector<uint8_t> make_bzimage(uint16_t version, uint16_t xloadflags, size_t kernel_size = 8192) {
  const size_t setup_sects = 4;
  std::vector<uint8_t> img((setup_sects + 1) * 512, 0);
  arch::SetupHeader hdr{};
  hdr.setup_sects = setup_sects;
  hdr.boot_flag = 0xaa55;
  hdr.header = 0x53726448;
  hdr.version = version;
  hdr.loadflags = 0x01;
  hdr.code32_start = 0x100000;
  hdr.kernel_alignment = 0x200000;
  hdr.relocatable_kernel = 1;
  hdr.xloadflags = xloadflags;
  hdr.init_size = 0x800000;
  put(img, 0x1f1, hdr);
  for (size_t i = 0; i < kernel_size; ++i) img.push_back(static_cast<uint8_t>(i * 7));
  return img;
}

TEST_F(LoaderTest, BzImageLoadsAt1MiBWith64BitEntryAt0x200) {
  auto path = write("bzImage", make_bzimage(0x020f, 0x3));
  KernelImage k = load_kernel(memory_, path);
  EXPECT_EQ(k.protocol, arch::BootProtocol::kLinux64);
  EXPECT_EQ(k.start, GuestAddress(0x100000));
  EXPECT_EQ(k.entry, GuestAddress(0x100200));
  EXPECT_EQ(k.end, GuestAddress(0x100000 + 8192));
  ASSERT_TRUE(k.setup_header);
  EXPECT_EQ(+k.setup_header->version, 0x020f);
  EXPECT_EQ(+k.setup_header->init_size, 0x800000u);
  EXPECT_EQ(memory_.read_obj<uint8_t>(GuestAddress(0x100001)), 7);
  EXPECT_EQ(memory_.read_obj<uint8_t>(GuestAddress(0x100000 + 8191)), static_cast<uint8_t>(8191 * 7));
}

TEST_F(LoaderTest, BzImageWithoutThe64BitEntryIsRejected) {
  try {
    load_kernel(memory_, write("old", make_bzimage(0x020a, 0x3)));
    FAIL();
  } catch (const common::Error& e) {
    EXPECT_NE(std::string(e.what()).find("boot protocol 2.10"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_kernel(memory_, write("no64", make_bzimage(0x020f, 0x0))), common::Error);
}

TEST_F(LoaderTest, PayloadElfLoadsWithEntryAt1MiB) {
  std::string path = std::string(EMBER_PAYLOAD_DIR) + "/hello.elf";
  KernelImage k = load_kernel(memory_, path);
  EXPECT_EQ(k.protocol, arch::BootProtocol::kLinux64);
  EXPECT_EQ(k.entry, GuestAddress(0x100000));
  EXPECT_EQ(k.start, GuestAddress(0x100000));
  EXPECT_GT(k.end, k.start);
  EXPECT_EQ(memory_.read_obj<uint8_t>(GuestAddress(0x100000)), 0xfa) << "cli, the first instruction of crt0";
}

TEST_F(LoaderTest, PvhPayloadIsRecognised) {
  KernelImage k = load_kernel(memory_, std::string(EMBER_PAYLOAD_DIR) + "/pvh_info.elf");
  EXPECT_EQ(k.protocol, arch::BootProtocol::kPvh);
  EXPECT_EQ(k.entry, GuestAddress(0x100000));
}

TEST_F(LoaderTest, InitrdGoesToTheTopOfLowMemoryPageAligned) {
  std::vector<uint8_t> initrd(10000, 0x5a);
  auto region = load_initrd(memory_, write("initrd", initrd), GuestAddress(0x200000));
  EXPECT_EQ(region.size, 10000u);
  EXPECT_EQ(region.address.raw() % 4096, 0u);
  EXPECT_LE(region.address.raw() + region.size, 64u << 20);
  EXPECT_GT(region.address.raw() + region.size + 4096, 64u << 20);
  EXPECT_EQ(memory_.read_obj<uint8_t>(region.address + 9999), 0x5a);
}

TEST_F(LoaderTest, InitrdOverlappingTheKernelIsRejected) {
  std::vector<uint8_t> initrd(1 << 20, 1);
  EXPECT_THROW(load_initrd(memory_, write("initrd", initrd), GuestAddress((63 << 20) + 1)), common::Error);
}

TEST_F(LoaderTest, EmptyInitrdIsRejected) {
  EXPECT_THROW(load_initrd(memory_, write("empty", {}), GuestAddress(0x200000)), common::Error);
}

TEST(KernelCmdline, JoinsWithSpacesAndAnnouncesVirtioDevices) {
  KernelCmdline c(arch::kCmdlineMaxSize);
  c.append("console=ttyS0 reboot=k");
  c.append("root=/dev/vda rw");
  c.add_virtio_mmio_device(0x1000, 0xc0001000, 5);
  c.add_virtio_mmio_device(0x1000, 0xc0002000, 6);
  EXPECT_EQ(c.str(),
            "console=ttyS0 reboot=k root=/dev/vda rw virtio_mmio.device=4K@0xc0001000:5 "
            "virtio_mmio.device=4K@0xc0002000:6");
  EXPECT_EQ(c.size_with_nul(), c.str().size() + 1);
}

TEST(KernelCmdline, EnforcesTheLimitIncludingTheNul) {
  KernelCmdline c(16);
  c.append(std::string(15, 'a'));  // 15 + NUL = 16: fits
  EXPECT_THROW(c.append("b"), common::Error);
  EXPECT_EQ(c.str(), std::string(15, 'a'));
  KernelCmdline d(16);
  EXPECT_THROW(d.append(std::string(16, 'a')), common::Error);
}

TEST(KernelCmdline, RejectsControlCharacters) {
  KernelCmdline c;
  EXPECT_THROW(c.append(std::string("a\nb")), common::Error);
  EXPECT_THROW(c.append(std::string("a\0b", 3)), common::Error);
}

}  // namespace
}  // namespace ember::vmm::loader
