#include "vmm/common/mapping.h"

#include <sys/mman.h>

#include <string>

#include "vmm/common/error.h"

namespace ember::common {

Mapping& Mapping::operator=(Mapping&& other) noexcept {
  if (this != &other) {
    reset();
    addr_ = std::exchange(other.addr_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

Mapping Mapping::map(size_t size, int prot, int flags, int fd, off_t offset, const char* what) {
  void* addr = ::mmap(nullptr, size, prot, flags, fd, offset);
  if (addr == MAP_FAILED) throw_errno(std::string("mmap ") + what + " (" + std::to_string(size) + " bytes)");
  return Mapping(addr, size);
}

Mapping Mapping::anonymous(size_t size, const char* what) {
  return map(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0, what);
}

void Mapping::reset() {
  if (addr_ != nullptr) ::munmap(addr_, size_);
  addr_ = nullptr;
  size_ = 0;
}

}  // namespace ember::common
