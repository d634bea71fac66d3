// Guest physical memory and the one bounds-checked way to reach it.
//
// Everything a guest hands us (ring addresses, buffer addresses, lengths) is
// untrusted. No code outside this file turns a guest address into a host
// pointer; callers get spans whose length was checked against the region.
#pragma once

#include <atomic>
#include <compare>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "vmm/common/error.h"
#include "vmm/common/mapping.h"
#include "vmm/common/unique_fd.h"

namespace ember::vmm {

// A guest-physical address: its own type so it cannot be confused with a
// host pointer, a size or a file offset.
class GuestAddress {
 public:
  constexpr GuestAddress() = default;
  constexpr explicit GuestAddress(uint64_t raw) : raw_(raw) {}
  constexpr uint64_t raw() const { return raw_; }
  // std::nullopt when the sum overflows 64 bits.
  constexpr std::optional<GuestAddress> checked_add(uint64_t offset) const {
    if (offset > UINT64_MAX - raw_) return std::nullopt;
    return GuestAddress(raw_ + offset);
  }
  // For offsets that are compile-time layout constants known not to overflow.
  constexpr GuestAddress operator+(uint64_t offset) const { return GuestAddress(raw_ + offset); }
  constexpr auto operator<=>(const GuestAddress&) const = default;

 private:
  uint64_t raw_ = 0;
};

std::string to_string(GuestAddress addr);  // "0x1000"

// A guest address range that is not backed by guest RAM (or overflows).
class GuestMemoryError : public common::Error {
 public:
  using common::Error::Error;
};

struct GuestRegion {
  GuestAddress start;
  common::Mapping mapping;  // host memory backing [start, start + size)
  common::UniqueFd fd;      // set when the region is file/memfd backed (vhost-user, shared memory)
  uint64_t fd_offset = 0;

  uint64_t size() const { return mapping.size(); }
  // One past the last byte; regions never end past 2^64.
  GuestAddress end() const { return GuestAddress(start.raw() + size()); }
  bool contains(GuestAddress addr) const { return addr >= start && addr.raw() - start.raw() < size(); }
};

class GuestMemory {
 public:
  GuestMemory() = default;
  GuestMemory(GuestMemory&&) = default;
  GuestMemory& operator=(GuestMemory&&) = default;

  // Private anonymous memory (MAP_PRIVATE|MAP_NORESERVE), one mapping of
  // exactly each range's size, demand-paged, between PROT_NONE guard pages
  // so the kernel never merges it with a neighbouring mapping.
  static GuestMemory anonymous(const std::vector<std::pair<GuestAddress, uint64_t>>& ranges);

  // Adds a region backed by an existing mapping. Throws GuestMemoryError if
  // it is empty, wraps past 2^64, or overlaps another region.
  void add_region(GuestAddress start, common::Mapping mapping, common::UniqueFd fd = {},
                  uint64_t fd_offset = 0);

  const std::vector<GuestRegion>& regions() const { return regions_; }
  uint64_t total_size() const;
  // The last guest address + 1 of the highest region (0 when empty).
  GuestAddress end() const;

  // True when every byte of [addr, addr + len) is guest RAM.
  bool contains(GuestAddress addr, uint64_t len) const;

  // Host view of [addr, addr + len). The range must lie inside one region.
  std::span<uint8_t> slice(GuestAddress addr, uint64_t len) const;

  // Copies between guest memory and host buffers; ranges may cross region
  // boundaries when the regions are contiguous.
  void read(GuestAddress addr, std::span<uint8_t> out) const;
  void write(GuestAddress addr, std::span<const uint8_t> in) const;

  template <typename T>
  T read_obj(GuestAddress addr) const {
    static_assert(std::is_trivially_copyable_v<T>);
    T value;
    read(addr, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&value), sizeof(T)));
    return value;
  }
  template <typename T>
  void write_obj(GuestAddress addr, const T& value) const {
    static_assert(std::is_trivially_copyable_v<T>);
    write(addr, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&value), sizeof(T)));
  }

  // Atomic accesses for values shared with a concurrently running guest
  // (virtqueue ring indices). `addr` must be naturally aligned.
  uint16_t load_acquire_u16(GuestAddress addr) const;
  void store_release_u16(GuestAddress addr, uint16_t value) const;

 private:
  const GuestRegion* find(GuestAddress addr) const;

  std::vector<GuestRegion> regions_;  // sorted by start, non-overlapping
  std::vector<common::Mapping> guard_pages_;  // PROT_NONE pages around anonymous regions
};

}  // namespace ember::vmm
