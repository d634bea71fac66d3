#include "vmm/vhost_user/memory_table.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <limits>

#include "vmm/common/mapping.h"
#include "vmm/common/text.h"

namespace ember::vmm::vhost_user {
namespace {

using common::hex;

std::string describe_region(size_t index, const MemoryRegionDesc& r) {
  return "memory region " + std::to_string(index) + " (guest " + hex(r.guest_address) + ", size " +
         hex(r.size) + ", user " + hex(r.user_address) + ", offset " + hex(r.mmap_offset) + ")";
}

bool overlaps(uint64_t a, uint64_t a_len, uint64_t b, uint64_t b_len) {
  return a < b + b_len && b < a + a_len;
}

}  // namespace

MemoryTable MemoryTable::map(std::span<const MemoryRegionDesc> regions,
                             std::vector<common::UniqueFd> fds) {
  if (regions.size() > kMaxMemoryRegions) {
    throw ProtocolError("SET_MEM_TABLE: " + std::to_string(regions.size()) + " regions, at most " +
                        std::to_string(kMaxMemoryRegions) + " are supported");
  }
  if (fds.size() != regions.size()) {
    throw ProtocolError("SET_MEM_TABLE: " + std::to_string(regions.size()) + " regions came with " +
                        std::to_string(fds.size()) +
                        " file descriptors; one per region is required");
  }
  static const uint64_t page_size = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  constexpr uint64_t kMaxOffset = static_cast<uint64_t>(std::numeric_limits<off_t>::max());

  for (size_t i = 0; i < regions.size(); ++i) {
    const MemoryRegionDesc& r = regions[i];
    std::string what = "SET_MEM_TABLE: " + describe_region(i, r);
    if (r.size == 0) throw ProtocolError(what + " is empty");
    if (r.guest_address > UINT64_MAX - r.size)
      throw ProtocolError(what + ": guest range wraps past 2^64");
    if (r.user_address > UINT64_MAX - r.size)
      throw ProtocolError(what + ": user range wraps past 2^64");
    if (r.mmap_offset > kMaxOffset || r.size > kMaxOffset - r.mmap_offset) {
      throw ProtocolError(what + ": mmap range exceeds the largest file offset");
    }
    if (r.mmap_offset % page_size != 0) {
      throw ProtocolError(what + ": mmap offset is not a multiple of the page size " +
                          std::to_string(page_size));
    }
    for (size_t j = 0; j < i; ++j) {
      const MemoryRegionDesc& o = regions[j];
      if (overlaps(r.guest_address, r.size, o.guest_address, o.size)) {
        throw ProtocolError(what + ": guest range overlaps " + describe_region(j, o));
      }
      if (overlaps(r.user_address, r.size, o.user_address, o.size)) {
        throw ProtocolError(what + ": user range overlaps " + describe_region(j, o));
      }
    }
    struct stat st {};
    if (::fstat(fds[i].get(), &st) < 0)
      throw ProtocolError(what + ": fstat: " + common::errno_text(errno));
    // Mapping past the end of a file would fault (SIGBUS) on first access;
    // only regular files have a size we can check.
    if (!S_ISREG(st.st_mode)) throw ProtocolError(what + ": its fd is not a regular file or memfd");
    if (static_cast<uint64_t>(st.st_size) < r.mmap_offset + r.size) {
      throw ProtocolError(what + ": its file is only " + std::to_string(st.st_size) +
                          " bytes long");
    }
  }

  MemoryTable table;
  for (const common::UniqueFd& fd : fds) {
    int seals = ::fcntl(fd.get(), F_GET_SEALS);
    if (seals < 0 || !(seals & F_SEAL_SHRINK)) table.sealed_ = false;
  }
  for (size_t i = 0; i < regions.size(); ++i) {
    const MemoryRegionDesc& r = regions[i];
    std::string what = "SET_MEM_TABLE: " + describe_region(i, r);
    common::Mapping mapping;
    try {
      mapping = common::Mapping::map(r.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
                                     fds[i].get(), static_cast<off_t>(r.mmap_offset),
                                     "vhost-user memory region");
    } catch (const common::Error& e) {
      throw ProtocolError(what + ": " + e.what());
    }
    try {
      table.memory_->add_region(GuestAddress(r.guest_address), std::move(mapping),
                                std::move(fds[i]), r.mmap_offset);
    } catch (const GuestMemoryError& e) {
      throw ProtocolError(what + ": " + e.what());
    }
    table.ranges_.push_back({r.user_address, r.size, GuestAddress(r.guest_address)});
  }
  return table;
}

std::optional<GuestAddress> MemoryTable::translate(uint64_t user_address, uint64_t len) const {
  for (const UserRange& r : ranges_) {
    if (user_address < r.user_address) continue;
    uint64_t offset = user_address - r.user_address;
    if (offset >= r.size || len > r.size - offset) continue;
    return GuestAddress(r.guest_address.raw() + offset);
  }
  return std::nullopt;
}

std::string MemoryTable::describe() const {
  std::string out;
  for (const UserRange& r : ranges_) {
    if (!out.empty()) out += ", ";
    std::string size = r.size % (1 << 20) == 0 ? std::to_string(r.size >> 20) + " MiB"
                       : r.size % 1024 == 0    ? std::to_string(r.size >> 10) + " KiB"
                                               : std::to_string(r.size) + " bytes";
    out += "[guest " + hex(r.guest_address.raw()) + " +" + size + " at user " +
           hex(r.user_address) + "]";
  }
  return out.empty() ? "no regions" : out;
}

}  // namespace ember::vmm::vhost_user
