#include "vmm/loader/elf_loader.h"

#include <elf.h>

#include <cstring>
#include <vector>

#include "vmm/arch/x86_64/layout.h"
#include "vmm/arch/x86_64/pvh.h"
#include "vmm/common/error.h"

namespace ember::vmm::loader {
namespace {

constexpr uint64_t kMaxNoteSegment = 1 << 20;

[[noreturn]] void bad(const ImageFile& file, const std::string& why) {
  throw common::Error("load kernel " + file.path() + ": " + why);
}

uint64_t align4(uint64_t v) { return (v + 3) & ~3ULL; }

// The PVH entry from a PT_NOTE segment's notes, if present.
std::optional<uint64_t> find_pvh_entry(const ImageFile& file, const Elf64_Phdr& ph) {
  if (ph.p_filesz > kMaxNoteSegment || ph.p_offset > file.size() || ph.p_filesz > file.size() - ph.p_offset) {
    bad(file, "PT_NOTE segment lies outside the file");
  }
  std::vector<uint8_t> notes(ph.p_filesz);
  file.read_at(ph.p_offset, notes);
  uint64_t pos = 0;
  while (pos + sizeof(Elf64_Nhdr) <= notes.size()) {
    Elf64_Nhdr nh;
    std::memcpy(&nh, notes.data() + pos, sizeof nh);
    uint64_t name_pos = pos + sizeof nh;
    uint64_t desc_pos = name_pos + align4(nh.n_namesz);
    uint64_t next = desc_pos + align4(nh.n_descsz);
    if (next > notes.size() || next <= pos) break;
    bool is_xen = nh.n_namesz == 4 && std::memcmp(notes.data() + name_pos, "Xen", 4) == 0;
    if (is_xen && nh.n_type == arch::kXenElfNotePhys32Entry) {
      if (nh.n_descsz == 4) {
        uint32_t entry;
        std::memcpy(&entry, notes.data() + desc_pos, 4);
        return entry;
      }
      if (nh.n_descsz == 8) {
        uint64_t entry;
        std::memcpy(&entry, notes.data() + desc_pos, 8);
        return entry;
      }
      bad(file, "XEN_ELFNOTE_PHYS32_ENTRY note has " + std::to_string(nh.n_descsz) + " bytes of data");
    }
    pos = next;
  }
  return std::nullopt;
}

}  // namespace

std::optional<KernelImage> load_elf(const GuestMemory& memory, const ImageFile& file) {
  if (file.size() < SELFMAG) return std::nullopt;
  Elf64_Ehdr eh{};
  uint8_t magic[SELFMAG];
  file.read_at(0, magic);
  if (std::memcmp(magic, ELFMAG, SELFMAG) != 0) return std::nullopt;
  if (file.size() < sizeof eh) bad(file, "truncated ELF header");
  file.read_at(0, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&eh), sizeof eh));
  if (eh.e_ident[EI_CLASS] != ELFCLASS64) bad(file, "not a 64-bit ELF");
  if (eh.e_ident[EI_DATA] != ELFDATA2LSB) bad(file, "not a little-endian ELF");
  if (eh.e_machine != EM_X86_64) bad(file, "not an x86_64 ELF (e_machine " + std::to_string(eh.e_machine) + ")");
  if (eh.e_phentsize != sizeof(Elf64_Phdr)) bad(file, "unexpected program header size");
  if (eh.e_phnum == 0 || eh.e_phnum > 256) bad(file, "unexpected number of program headers");
  uint64_t ph_bytes = uint64_t{eh.e_phnum} * sizeof(Elf64_Phdr);
  if (eh.e_phoff > file.size() || ph_bytes > file.size() - eh.e_phoff) bad(file, "program headers lie outside the file");
  std::vector<Elf64_Phdr> phdrs(eh.e_phnum);
  file.read_at(eh.e_phoff, std::span<uint8_t>(reinterpret_cast<uint8_t*>(phdrs.data()), ph_bytes));

  KernelImage image;
  image.entry = GuestAddress(eh.e_entry);
  uint64_t lowest = UINT64_MAX, highest = 0;
  for (const auto& ph : phdrs) {
    if (ph.p_type == PT_NOTE) {
      if (auto pvh = find_pvh_entry(file, ph)) {
        image.protocol = arch::BootProtocol::kPvh;
        image.entry = GuestAddress(*pvh);
      }
      continue;
    }
    if (ph.p_type != PT_LOAD || ph.p_memsz == 0) continue;
    if (ph.p_filesz > ph.p_memsz) bad(file, "PT_LOAD segment with p_filesz > p_memsz");
    if (ph.p_offset > file.size() || ph.p_filesz > file.size() - ph.p_offset) {
      bad(file, "PT_LOAD segment lies outside the file");
    }
    if (ph.p_paddr < arch::kHimemStart) {
      bad(file, "PT_LOAD segment at " + to_string(GuestAddress(ph.p_paddr)) + " is below 1 MiB");
    }
    GuestAddress addr(ph.p_paddr);
    if (!memory.contains(addr, ph.p_memsz)) {
      bad(file, "PT_LOAD segment " + to_string(addr) + " +" + std::to_string(ph.p_memsz) +
                    " does not fit in guest memory");
    }
    // Fresh guest memory is zero, so the bss part (p_memsz - p_filesz) needs
    // no writes (and no page faults).
    if (ph.p_filesz > 0) file.read_at(ph.p_offset, memory.slice(addr, ph.p_filesz));
    lowest = std::min(lowest, ph.p_paddr);
    highest = std::max(highest, ph.p_paddr + ph.p_memsz);
  }
  if (highest == 0) bad(file, "no loadable segments");
  image.start = GuestAddress(lowest);
  image.end = GuestAddress(highest);
  return image;
}

}  // namespace ember::vmm::loader
