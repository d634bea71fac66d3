// Owning wrapper for an mmap(2) region: the only place in ember that unmaps.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <utility>

namespace ember::common {

class Mapping {
 public:
  Mapping() = default;
  // Adopts an existing mapping.
  Mapping(void* addr, size_t size) : addr_(addr), size_(size) {}
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  Mapping(Mapping&& other) noexcept
      : addr_(std::exchange(other.addr_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  Mapping& operator=(Mapping&& other) noexcept;
  ~Mapping() { reset(); }

  // mmap(nullptr, size, prot, flags, fd, offset); throws SystemError naming `what`.
  static Mapping map(size_t size, int prot, int flags, int fd, off_t offset, const char* what);
  // Private anonymous read/write memory, demand-paged (MAP_NORESERVE).
  static Mapping anonymous(size_t size, const char* what);

  uint8_t* data() const { return static_cast<uint8_t*>(addr_); }
  size_t size() const { return size_; }
  bool valid() const { return addr_ != nullptr; }
  void reset();

 private:
  void* addr_ = nullptr;
  size_t size_ = 0;
};

}  // namespace ember::common
