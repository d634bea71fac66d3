#include "vmm/devices/virtio/testing/driver_queue.h"

#include <stdexcept>

#include "vmm/devices/virtio/queue.h"

namespace ember::vmm::virtio::testing {
namespace {
struct RawDescriptor {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
}  // namespace

GuestAddress GuestAllocator::alloc(uint64_t size, uint64_t align) {
  uint64_t at = (next_ + align - 1) / align * align;
  if (at + size > end_) throw std::runtime_error("test guest allocator exhausted");
  next_ = at + size;
  return GuestAddress(at);
}

DriverQueue::DriverQueue(const GuestMemory& memory, GuestAllocator& allocator, uint16_t size)
    : memory_(memory), allocator_(allocator), size_(size) {
  desc_ = allocator_.alloc(16 * uint64_t(size), 16);
  avail_ = allocator_.alloc(6 + 2 * uint64_t(size), 2);
  used_ = allocator_.alloc(6 + 8 * uint64_t(size), 4);
  std::vector<uint8_t> zero(16 * uint64_t(size), 0);  // the largest of the three
  memory_.write(desc_, zero);
  memory_.write(avail_, std::span<const uint8_t>(zero.data(), 6 + 2 * uint64_t(size)));
  memory_.write(used_, std::span<const uint8_t>(zero.data(), 6 + 8 * uint64_t(size)));
  for (int i = size - 1; i >= 0; --i) free_.push_back(static_cast<uint16_t>(i));
}

QueueState DriverQueue::state() const {
  QueueState s;
  s.max_size = size_;
  s.size = size_;
  s.ready = true;
  s.desc_table = desc_;
  s.avail_ring = avail_;
  s.used_ring = used_;
  return s;
}

uint16_t DriverQueue::alloc_descriptor() {
  if (free_.empty()) throw std::runtime_error("test driver queue: descriptor table full");
  uint16_t d = free_.back();
  free_.pop_back();
  return d;
}

void DriverQueue::write_descriptor_at(GuestAddress table, uint16_t index, uint64_t addr,
                                      uint32_t len, uint16_t flags, uint16_t next) {
  memory_.write_obj(table + 16 * uint64_t(index), RawDescriptor{addr, len, flags, next});
}

void DriverQueue::write_descriptor(uint16_t index, uint64_t addr, uint32_t len, uint16_t flags,
                                   uint16_t next) {
  write_descriptor_at(desc_, index, addr, len, flags, next);
}

uint16_t DriverQueue::add_chain(const std::vector<Buffer>& buffers, bool indirect) {
  std::vector<uint16_t> used;
  uint16_t head;
  if (indirect) {
    GuestAddress table = allocator_.alloc(16 * buffers.size(), 16);
    for (size_t i = 0; i < buffers.size(); ++i) {
      uint16_t flags =
          (buffers[i].writable ? kDescFlagWrite : 0) | (i + 1 < buffers.size() ? kDescFlagNext : 0);
      write_descriptor_at(table, static_cast<uint16_t>(i), buffers[i].addr.raw(), buffers[i].len,
                          flags, static_cast<uint16_t>(i + 1));
    }
    head = alloc_descriptor();
    used.push_back(head);
    write_descriptor(head, table.raw(), static_cast<uint32_t>(16 * buffers.size()),
                     kDescFlagIndirect, 0);
  } else {
    for (size_t i = 0; i < buffers.size(); ++i) used.push_back(alloc_descriptor());
    for (size_t i = 0; i < buffers.size(); ++i) {
      bool last = i + 1 == buffers.size();
      uint16_t flags = (buffers[i].writable ? kDescFlagWrite : 0) | (last ? 0 : kDescFlagNext);
      write_descriptor(used[i], buffers[i].addr.raw(), buffers[i].len, flags,
                       last ? 0 : used[i + 1]);
    }
    head = used.front();
  }
  chains_[head] = std::move(used);
  publish(head);
  return head;
}

void DriverQueue::publish(uint16_t head) {
  memory_.write_obj(avail_ + 4 + 2 * uint64_t(avail_idx_ % size_), head);
  ++avail_idx_;
  memory_.store_release_u16(avail_ + 2, avail_idx_);
}

void DriverQueue::set_avail_idx(uint16_t idx) {
  avail_idx_ = idx;
  memory_.store_release_u16(avail_ + 2, idx);
}

uint16_t DriverQueue::avail_idx() const { return avail_idx_; }

void DriverQueue::set_avail_flags(uint16_t flags) { memory_.store_release_u16(avail_, flags); }

void DriverQueue::set_used_event(uint16_t value) {
  memory_.store_release_u16(avail_ + 4 + 2 * uint64_t(size_), value);
}

uint16_t DriverQueue::used_idx() const { return memory_.load_acquire_u16(used_ + 2); }
uint16_t DriverQueue::used_flags() const { return memory_.load_acquire_u16(used_); }
uint16_t DriverQueue::avail_event() const {
  return memory_.load_acquire_u16(used_ + 4 + 8 * uint64_t(size_));
}

UsedElement DriverQueue::used_at(uint16_t slot) const {
  return memory_.read_obj<UsedElement>(used_ + 4 + 8 * uint64_t(slot % size_));
}

std::optional<UsedElement> DriverQueue::next_used() {
  if (used_idx() == last_used_) return std::nullopt;
  UsedElement e = used_at(last_used_);
  ++last_used_;
  auto it = chains_.find(static_cast<uint16_t>(e.id));
  if (it != chains_.end()) {
    for (uint16_t d : it->second) free_.push_back(d);
    chains_.erase(it);
  }
  return e;
}

GuestAddress put_bytes(const GuestMemory& memory, GuestAllocator& allocator,
                       std::span<const uint8_t> data) {
  GuestAddress at = allocator.alloc(data.size() ? data.size() : 1, 8);
  memory.write(at, data);
  return at;
}

std::vector<uint8_t> get_bytes(const GuestMemory& memory, GuestAddress addr, uint64_t len) {
  std::vector<uint8_t> out(len);
  memory.read(addr, out);
  return out;
}

}  // namespace ember::vmm::virtio::testing
