#include "vmm/vstate/guest_memory.h"

#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "vmm/common/text.h"

namespace ember::vmm {
namespace {

std::string range_text(GuestAddress addr, uint64_t len) {
  return "[" + to_string(addr) + ", +" + std::to_string(len) + ")";
}

template <typename T>
T* aligned_ptr(const GuestMemory& mem, GuestAddress addr) {
  if (addr.raw() % alignof(T) != 0) {
    throw GuestMemoryError("guest address " + to_string(addr) + " is not " + std::to_string(alignof(T)) +
                           "-byte aligned");
  }
  return reinterpret_cast<T*>(mem.slice(addr, sizeof(T)).data());
}

}  // namespace

std::string to_string(GuestAddress addr) { return common::hex(addr.raw()); }

GuestMemory GuestMemory::anonymous(const std::vector<std::pair<GuestAddress, uint64_t>>& ranges) {
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  GuestMemory mem;
  for (auto& [start, size] : ranges) {
    // Each region must stay one VMA of exactly its size: that is how memory
    // overhead tools tell guest RAM from VMM memory. The kernel merges
    // adjacent anonymous mappings with equal flags (a malloc arena placed
    // next to us would grow our VMA), so the region sits between two
    // PROT_NONE guard pages, which never merge with it.
    void* base = ::mmap(nullptr, size + 2 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) common::throw_errno("reserve guest memory (" + std::to_string(size) + " bytes)");
    // From here on each piece has its owner, whatever fails next.
    auto* bytes = static_cast<uint8_t*>(base);
    common::Mapping low_guard(bytes, page);
    common::Mapping mapping(bytes + page, size);
    common::Mapping high_guard(bytes + page + size, page);
    void* ram = ::mmap(bytes + page, size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    if (ram == MAP_FAILED) common::throw_errno("mmap guest memory (" + std::to_string(size) + " bytes)");
    mem.guard_pages_.push_back(std::move(low_guard));
    mem.guard_pages_.push_back(std::move(high_guard));
    // Name it too (shows as [anon:ember-guest-ram]); best effort, kernels
    // without CONFIG_ANON_VMA_NAME refuse.
    ::prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, reinterpret_cast<unsigned long>(ram), size,
            reinterpret_cast<unsigned long>("ember-guest-ram"));
    mem.add_region(start, std::move(mapping));
  }
  return mem;
}

void GuestMemory::add_region(GuestAddress start, common::Mapping mapping, common::UniqueFd fd, uint64_t fd_offset) {
  uint64_t size = mapping.size();
  if (size == 0) throw GuestMemoryError("guest memory region at " + to_string(start) + " is empty");
  if (!start.checked_add(size)) throw GuestMemoryError("guest memory region " + range_text(start, size) + " wraps");
  for (auto& r : regions_) {
    if (start < r.end() && r.start < GuestAddress(start.raw() + size)) {
      throw GuestMemoryError("guest memory region " + range_text(start, size) + " overlaps " +
                             range_text(r.start, r.size()));
    }
  }
  GuestRegion region{start, std::move(mapping), std::move(fd), fd_offset};
  auto pos = std::upper_bound(regions_.begin(), regions_.end(), start,
                              [](GuestAddress a, const GuestRegion& r) { return a < r.start; });
  regions_.insert(pos, std::move(region));
}

uint64_t GuestMemory::total_size() const {
  uint64_t total = 0;
  for (auto& r : regions_) total += r.size();
  return total;
}

GuestAddress GuestMemory::end() const { return regions_.empty() ? GuestAddress(0) : regions_.back().end(); }

const GuestRegion* GuestMemory::find(GuestAddress addr) const {
  auto it = std::upper_bound(regions_.begin(), regions_.end(), addr,
                             [](GuestAddress a, const GuestRegion& r) { return a < r.start; });
  if (it == regions_.begin()) return nullptr;
  --it;
  return it->contains(addr) ? &*it : nullptr;
}

bool GuestMemory::contains(GuestAddress addr, uint64_t len) const {
  if (!addr.checked_add(len)) return false;
  while (len > 0) {
    const GuestRegion* r = find(addr);
    if (!r) return false;
    uint64_t avail = r->end().raw() - addr.raw();
    if (avail >= len) return true;
    len -= avail;
    addr = r->end();
  }
  return true;
}

std::span<uint8_t> GuestMemory::slice(GuestAddress addr, uint64_t len) const {
  const GuestRegion* r = find(addr);
  if (!r || !addr.checked_add(len) || r->end().raw() - addr.raw() < len) {
    throw GuestMemoryError("guest memory range " + range_text(addr, len) + " is not backed by guest RAM");
  }
  return {r->mapping.data() + (addr.raw() - r->start.raw()), static_cast<size_t>(len)};
}

void GuestMemory::read(GuestAddress addr, std::span<uint8_t> out) const {
  if (!contains(addr, out.size())) {
    throw GuestMemoryError("guest memory range " + range_text(addr, out.size()) + " is not backed by guest RAM");
  }
  size_t done = 0;
  while (done < out.size()) {
    const GuestRegion* r = find(GuestAddress(addr.raw() + done));
    uint64_t off = addr.raw() + done - r->start.raw();
    size_t n = static_cast<size_t>(std::min<uint64_t>(out.size() - done, r->size() - off));
    std::memcpy(out.data() + done, r->mapping.data() + off, n);
    done += n;
  }
}

void GuestMemory::write(GuestAddress addr, std::span<const uint8_t> in) const {
  if (!contains(addr, in.size())) {
    throw GuestMemoryError("guest memory range " + range_text(addr, in.size()) + " is not backed by guest RAM");
  }
  size_t done = 0;
  while (done < in.size()) {
    const GuestRegion* r = find(GuestAddress(addr.raw() + done));
    uint64_t off = addr.raw() + done - r->start.raw();
    size_t n = static_cast<size_t>(std::min<uint64_t>(in.size() - done, r->size() - off));
    std::memcpy(r->mapping.data() + off, in.data() + done, n);
    done += n;
  }
}

uint16_t GuestMemory::load_acquire_u16(GuestAddress addr) const {
  return std::atomic_ref<uint16_t>(*aligned_ptr<uint16_t>(*this, addr)).load(std::memory_order_acquire);
}

void GuestMemory::store_release_u16(GuestAddress addr, uint16_t value) const {
  std::atomic_ref<uint16_t>(*aligned_ptr<uint16_t>(*this, addr)).store(value, std::memory_order_release);
}

}  // namespace ember::vmm
