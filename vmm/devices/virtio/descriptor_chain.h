// A validated virtio descriptor chain and byte cursors over it.
//
// Queue::pop() walks a whole chain (direct and indirect descriptors) before a
// device sees it: every buffer has been checked to lie in guest RAM, readable
// buffers come before writable ones (virtio 1.2 §2.7.4.2), and the totals fit
// in 32 bits (§2.7.5: a chain is at most 2^32 bytes). Devices then read and
// write through cursors that clamp to the chain and go through GuestMemory.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <span>
#include <vector>

#include "vmm/vstate/guest_memory.h"

namespace ember::vmm::virtio {

// One guest buffer of a chain.
struct Descriptor {
  GuestAddress addr;
  uint32_t len = 0;
};

class DescriptorChain {
 public:
  // Index of the head descriptor: what the device hands back in the used ring.
  uint16_t head() const { return head_; }
  // Device-readable buffers (driver → device), then device-writable ones.
  std::span<const Descriptor> readable() const { return {descriptors_.data(), first_writable_}; }
  std::span<const Descriptor> writable() const {
    return {descriptors_.data() + first_writable_, descriptors_.size() - first_writable_};
  }
  uint32_t readable_len() const { return readable_len_; }
  uint32_t writable_len() const { return writable_len_; }
  size_t descriptor_count() const { return descriptors_.size(); }

 private:
  friend class Queue;
  void clear() {
    descriptors_.clear();
    first_writable_ = 0;
    readable_len_ = writable_len_ = 0;
  }

  uint16_t head_ = 0;
  std::vector<Descriptor> descriptors_;
  size_t first_writable_ = 0;
  uint32_t readable_len_ = 0;
  uint32_t writable_len_ = 0;
};

// Sequential access to one direction of a chain (its readable or its writable
// buffers) as if they were one byte stream. Every operation clamps to what is
// left; nothing throws for guest-controlled lengths. A GuestMemoryError can
// only come from memory that changed after the chain was validated.
class ChainCursor {
 public:
  ChainCursor(const GuestMemory& memory, std::span<const Descriptor> buffers);

  uint64_t remaining() const { return remaining_; }
  uint64_t consumed() const { return consumed_; }
  // Advances by min(n, remaining()); returns how far it went.
  uint64_t skip(uint64_t n);
  // Copies from guest buffers into `out`; returns the bytes copied.
  size_t read(std::span<uint8_t> out);
  // Copies `in` into guest buffers; returns the bytes copied.
  size_t write(std::span<const uint8_t> in);
  // Appends host views (pointer + length, checked by GuestMemory) of the next
  // min(len, remaining()) bytes to `out` without advancing, splitting at
  // descriptor and guest-region boundaries. For readv/writev/preadv/pwritev
  // straight into guest memory. Returns the number of bytes covered.
  uint64_t iovecs(uint64_t len, std::vector<iovec>& out) const;

 private:
  // Moves the next min(len, remaining()) bytes a descriptor at a time:
  // `copy(guest_address, offset_in_host_buffer, length)` for each piece.
  template <class Copy>
  size_t copy_pieces(size_t len, Copy copy);

  const GuestMemory* memory_;
  std::span<const Descriptor> buffers_;
  size_t index_ = 0;     // current buffer
  uint32_t offset_ = 0;  // offset inside it
  uint64_t remaining_ = 0;
  uint64_t consumed_ = 0;
};

}  // namespace ember::vmm::virtio
