#include "vmm/devices/virtio/descriptor_chain.h"

#include <algorithm>

namespace ember::vmm::virtio {

ChainCursor::ChainCursor(const GuestMemory& memory, std::span<const Descriptor> buffers)
    : memory_(&memory), buffers_(buffers) {
  for (auto& d : buffers_) remaining_ += d.len;
  // Skip leading zero-length buffers so index_ always points at data.
  while (index_ < buffers_.size() && buffers_[index_].len == 0) ++index_;
}

uint64_t ChainCursor::skip(uint64_t n) {
  uint64_t done = 0;
  while (done < n && index_ < buffers_.size()) {
    uint64_t left_here = buffers_[index_].len - offset_;
    uint64_t step = std::min(left_here, n - done);
    done += step;
    offset_ += static_cast<uint32_t>(step);
    if (offset_ == buffers_[index_].len) {
      offset_ = 0;
      ++index_;
      while (index_ < buffers_.size() && buffers_[index_].len == 0) ++index_;
    }
  }
  remaining_ -= done;
  consumed_ += done;
  return done;
}

template <class Copy>
size_t ChainCursor::copy_pieces(size_t len, Copy copy) {
  size_t done = 0;
  while (done < len && index_ < buffers_.size()) {
    const Descriptor& d = buffers_[index_];
    size_t step = std::min<uint64_t>(d.len - offset_, len - done);
    copy(d.addr + offset_, done, step);
    done += step;
    skip(step);
  }
  return done;
}

size_t ChainCursor::read(std::span<uint8_t> out) {
  return copy_pieces(out.size(), [&](GuestAddress at, size_t done, size_t step) {
    memory_->read(at, out.subspan(done, step));
  });
}

size_t ChainCursor::write(std::span<const uint8_t> in) {
  return copy_pieces(in.size(), [&](GuestAddress at, size_t done, size_t step) {
    memory_->write(at, in.subspan(done, step));
  });
}

uint64_t ChainCursor::iovecs(uint64_t len, std::vector<iovec>& out) const {
  uint64_t done = 0;
  size_t index = index_;
  uint64_t offset = offset_;
  while (done < len && index < buffers_.size()) {
    const Descriptor& d = buffers_[index];
    uint64_t want = std::min<uint64_t>(d.len - offset, len - done);
    GuestAddress addr = d.addr + offset;
    // A buffer may straddle two adjacent regions; slice() only serves one.
    uint64_t piece_done = 0;
    while (piece_done < want) {
      GuestAddress at = addr + piece_done;
      uint64_t in_region = want - piece_done;
      for (auto& r : memory_->regions()) {
        if (r.contains(at)) {
          in_region = std::min(in_region, r.end().raw() - at.raw());
          break;
        }
      }
      std::span<uint8_t> host = memory_->slice(at, in_region);
      out.push_back(iovec{host.data(), host.size()});
      piece_done += in_region;
    }
    done += want;
    offset = 0;
    ++index;
  }
  return done;
}

}  // namespace ember::vmm::virtio
