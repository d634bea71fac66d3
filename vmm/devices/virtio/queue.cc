#include "vmm/devices/virtio/queue.h"

#include <atomic>

namespace ember::vmm::virtio {
namespace {

// virtio 1.2 §2.7.5: struct virtq_desc, little-endian (ember is x86_64 only).
struct RawDescriptor {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(RawDescriptor) == 16);

struct RawUsedElem {
  uint32_t id;
  uint32_t len;
};
static_assert(sizeof(RawUsedElem) == 8);

bool is_power_of_two(uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

std::string hex(uint64_t v) { return to_string(GuestAddress(v)); }

}  // namespace

Queue::Queue(const GuestMemory& memory, const QueueState& state, uint64_t acked_features,
             std::string name)
    : memory_(&memory),
      name_(std::move(name)),
      initial_(state),
      size_(state.size),
      desc_(state.desc_table),
      avail_(state.avail_ring),
      used_(state.used_ring),
      event_idx_(acked_features & (uint64_t(1) << kFeatureEventIdx)),
      indirect_(acked_features & (uint64_t(1) << kFeatureIndirectDesc)),
      next_avail_(state.next_avail),
      next_used_(state.next_used),
      avail_idx_cache_(state.next_avail),
      signalled_used_(state.next_used) {
  auto reject = [&](const std::string& why) { throw QueueError(name_ + ": " + why); };
  if (!state.ready) reject("not ready");
  if (!is_power_of_two(size_) || size_ > state.max_size || size_ > 32768) {
    reject("size " + std::to_string(size_) +
           " is not a power of two <= " + std::to_string(state.max_size));
  }
  uint64_t n = size_;
  if (desc_.raw() % 16) reject("descriptor table " + to_string(desc_) + " is not 16-byte aligned");
  if (avail_.raw() % 2) reject("available ring " + to_string(avail_) + " is not 2-byte aligned");
  if (used_.raw() % 4) reject("used ring " + to_string(used_) + " is not 4-byte aligned");
  if (!memory.contains(desc_, 16 * n))
    reject("descriptor table " + to_string(desc_) + " is outside guest RAM");
  // flags, idx, ring[size], used_event
  if (!memory.contains(avail_, 6 + 2 * n))
    reject("available ring " + to_string(avail_) + " is outside guest RAM");
  // flags, idx, ring[size], avail_event
  if (!memory.contains(used_, 6 + 8 * n))
    reject("used ring " + to_string(used_) + " is outside guest RAM");
}

QueueState Queue::state() const {
  QueueState s = initial_;
  s.next_avail = next_avail_;
  s.next_used = next_used_;
  return s;
}

void Queue::fail(const std::string& message) {
  if (broken_) return;
  broken_ = true;
  if (on_error_) on_error_(name_ + ": " + message, true);
}

uint16_t Queue::load_avail_idx() {
  // virtio 1.2 §2.7.13.2 (driver side writes ring then idx with a barrier):
  // acquire so the ring entries we read next are the ones the idx covers.
  avail_idx_cache_ = memory_->load_acquire_u16(avail_ + 2);
  return avail_idx_cache_;
}

uint16_t Queue::pending() {
  if (broken_) return 0;
  uint16_t avail = load_avail_idx();
  uint16_t count = static_cast<uint16_t>(avail - next_avail_);
  if (count > size_) {
    fail("available index " + std::to_string(avail) + " is " + std::to_string(count) +
         " entries ahead of the device, more than the queue size " + std::to_string(size_));
    return 0;
  }
  return count;
}

std::optional<DescriptorChain> Queue::pop() {
  DescriptorChain chain;
  if (!pop(chain)) return std::nullopt;
  return chain;
}

bool Queue::pop(DescriptorChain& chain) {
  while (!broken_) {
    if (next_avail_ == avail_idx_cache_ && pending() == 0) return false;
    if (broken_) return false;
    uint16_t slot = next_avail_ % size_;
    uint16_t head = memory_->read_obj<uint16_t>(avail_ + 4 + 2 * uint64_t(slot));
    if (head >= size_) {
      fail("available ring entry " + std::to_string(slot) + " names descriptor " +
           std::to_string(head) + " beyond the queue size " + std::to_string(size_));
      return false;
    }
    uint16_t from = next_avail_;
    ++next_avail_;
    std::string why;
    WalkResult result;
    try {
      result = walk(head, chain, why);
    } catch (const GuestMemoryError& e) {
      // Unreachable while memory stays as validated; never let it escape.
      result = WalkResult::kFatal;
      why = e.what();
    }
    if (result == WalkResult::kOk) {
      last_pop_from_ = from;
      return true;
    }
    if (result == WalkResult::kFatal) {
      fail("descriptor chain at head " + std::to_string(head) + ": " + why);
      return false;
    }
    ++skipped_chains_;
    if (on_error_)
      on_error_(name_ + ": descriptor chain at head " + std::to_string(head) + ": " + why, false);
    add_used(head, 0);
  }
  return false;
}

void Queue::undo_pop() { next_avail_ = last_pop_from_; }

void Queue::undo_pops(uint16_t count) { next_avail_ = static_cast<uint16_t>(next_avail_ - count); }

bool Queue::append(DescriptorChain& chain, uint64_t addr, uint32_t len, uint16_t flags,
                   std::string& why) {
  bool writable = flags & kDescFlagWrite;
  if (!writable && chain.descriptors_.size() != chain.first_writable_) {
    why = "device-readable buffer after a device-writable one (virtio 1.2 §2.7.4.2)";
    return false;
  }
  if (!memory_->contains(GuestAddress(addr), len)) {
    why = "buffer [" + hex(addr) + ", +" + std::to_string(len) + ") is outside guest RAM";
    return false;
  }
  uint32_t& total = writable ? chain.writable_len_ : chain.readable_len_;
  if (len > UINT32_MAX - total) {
    why = "chain is longer than 4 GiB (virtio 1.2 §2.7.5)";
    return false;
  }
  total += len;
  chain.descriptors_.push_back(Descriptor{GuestAddress(addr), len});
  if (!writable) chain.first_writable_ = chain.descriptors_.size();
  return true;
}

Queue::WalkResult Queue::walk(uint16_t head, DescriptorChain& chain, std::string& why) {
  chain.clear();
  chain.head_ = head;
  uint16_t index = head;
  // A chain in the main table can touch each descriptor at most once; more
  // steps than the table has entries means a loop (§2.7.5.2).
  for (uint32_t steps = 0;; ++steps) {
    if (steps >= size_) {
      why = "more than " + std::to_string(size_) + " descriptors (loop?)";
      return WalkResult::kInvalid;
    }
    auto d = memory_->read_obj<RawDescriptor>(desc_ + 16 * uint64_t(index));
    if (d.flags & kDescFlagIndirect) {
      // §2.7.5.3: one table, referenced by the last descriptor, whose own
      // WRITE flag is ignored.
      if (!indirect_) {
        why = "indirect descriptor without VIRTIO_F_INDIRECT_DESC";
        return WalkResult::kInvalid;
      }
      if (d.flags & kDescFlagNext) {
        why = "indirect descriptor with NEXT set";
        return WalkResult::kInvalid;
      }
      if (d.len == 0 || d.len % 16 != 0 || d.len / 16 > kMaxIndirectDescriptors) {
        why = "indirect table length " + std::to_string(d.len) +
              " is not a multiple of 16 in [16, " + std::to_string(16 * kMaxIndirectDescriptors) +
              "]";
        return WalkResult::kInvalid;
      }
      if (!memory_->contains(GuestAddress(d.addr), d.len)) {
        why = "indirect table [" + hex(d.addr) + ", +" + std::to_string(d.len) +
              ") is outside guest RAM";
        return WalkResult::kInvalid;
      }
      uint32_t entries = d.len / 16;
      uint32_t i = 0;
      for (uint32_t isteps = 0;; ++isteps) {
        if (isteps >= entries) {
          why = "indirect table loops";
          return WalkResult::kInvalid;
        }
        auto e = memory_->read_obj<RawDescriptor>(GuestAddress(d.addr) + 16 * uint64_t(i));
        if (e.flags & kDescFlagIndirect) {
          why = "indirect descriptor inside an indirect table";
          return WalkResult::kInvalid;
        }
        if (!append(chain, e.addr, e.len, e.flags, why)) return WalkResult::kInvalid;
        if (!(e.flags & kDescFlagNext)) break;
        i = e.next;
        if (i >= entries) {
          why = "indirect descriptor " + std::to_string(i) + " is beyond the table's " +
                std::to_string(entries);
          return WalkResult::kInvalid;
        }
      }
      break;
    }
    if (!append(chain, d.addr, d.len, d.flags, why)) return WalkResult::kInvalid;
    if (!(d.flags & kDescFlagNext)) break;
    index = d.next;
    if (index >= size_) {
      why = "next descriptor " + std::to_string(index) + " is beyond the queue size " +
            std::to_string(size_);
      return WalkResult::kInvalid;
    }
  }
  if (chain.descriptors_.empty()) {
    why = "empty chain";
    return WalkResult::kInvalid;
  }
  return WalkResult::kOk;
}

void Queue::add_used(uint16_t head, uint32_t len) {
  if (broken_) return;
  uint16_t slot = next_used_ % size_;
  memory_->write_obj(used_ + 4 + 8 * uint64_t(slot), RawUsedElem{head, len});
  ++next_used_;
  // §2.7.8: the element must be visible before the index that publishes it.
  memory_->store_release_u16(used_ + 2, next_used_);
}

bool Queue::needs_interrupt() {
  if (broken_) return false;
  uint16_t old_used = signalled_used_;
  uint16_t new_used = next_used_;
  if (old_used == new_used) return false;
  signalled_used_ = new_used;
  // Our used->idx store must be ordered before we read the driver's
  // suppression word, or we could miss its update (§2.7.10).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (event_idx_) {
    uint16_t used_event = memory_->load_acquire_u16(used_event_addr());
    // vring_need_event(): interrupt if used_event lies in [old, new).
    return static_cast<uint16_t>(new_used - used_event - 1) <
           static_cast<uint16_t>(new_used - old_used);
  }
  uint16_t flags = memory_->load_acquire_u16(avail_);
  return !(flags & kAvailFlagNoInterrupt);
}

void Queue::disable_notifications() {
  if (broken_ || notifications_disabled_) return;
  notifications_disabled_ = true;
  // With EVENT_IDX the driver kicks only when it passes avail_event, which
  // we leave where it is; without it, ask explicitly (§2.7.7.1).
  if (!event_idx_) memory_->store_release_u16(used_, kUsedFlagNoNotify);
}

bool Queue::enable_notifications() {
  if (broken_) return false;
  notifications_disabled_ = false;
  if (event_idx_) {
    memory_->store_release_u16(avail_event_addr(), next_avail_);
  } else {
    memory_->store_release_u16(used_, 0);
  }
  // The re-arm must be visible before we look at avail->idx again, or a
  // buffer added in between would get neither a kick nor our attention.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return pending() != 0;
}

}  // namespace ember::vmm::virtio
