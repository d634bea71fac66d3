// A small, honest virtio driver for host-side device tests and fuzzers: it
// lays out real split virtqueues (virtio 1.2 §2.7) in a real GuestMemory,
// posts descriptor chains the way a guest driver does, and reads the used
// ring back. Raw accessors let tests build hostile rings on purpose.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "vmm/devices/virtio/virtio_device.h"
#include "vmm/vstate/guest_memory.h"

namespace ember::vmm::virtio::testing {

// Bump allocator over a guest address range.
class GuestAllocator {
 public:
  GuestAllocator(GuestAddress start, uint64_t size)
      : next_(start.raw()), end_(start.raw() + size) {}
  GuestAddress alloc(uint64_t size, uint64_t align = 16);

 private:
  uint64_t next_;
  uint64_t end_;
};

struct UsedElement {
  uint32_t id = 0;
  uint32_t len = 0;
};

// One buffer of a chain as the driver posts it.
struct Buffer {
  GuestAddress addr;
  uint32_t len = 0;
  bool writable = false;
};

class DriverQueue {
 public:
  DriverQueue(const GuestMemory& memory, GuestAllocator& allocator, uint16_t size);

  // What the transport would hand the device (ready, addresses, positions 0).
  QueueState state() const;
  uint16_t size() const { return size_; }

  // Writes `buffers` as one chain, direct or through an indirect table, makes
  // it available and returns its head. Throws if the table is full.
  uint16_t add_chain(const std::vector<Buffer>& buffers, bool indirect = false);
  // Returns the next used element not yet seen, freeing its descriptors.
  std::optional<UsedElement> next_used();
  // Available entries not used yet.
  size_t in_flight() const { return chains_.size(); }

  // Raw access for hostile rings.
  void write_descriptor(uint16_t index, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next);
  void write_descriptor_at(GuestAddress table, uint16_t index, uint64_t addr, uint32_t len,
                           uint16_t flags, uint16_t next);
  // Puts `head` in the next avail slot and bumps avail->idx (release).
  void publish(uint16_t head);
  void set_avail_idx(uint16_t idx);
  uint16_t avail_idx() const;
  void set_avail_flags(uint16_t flags);
  void set_used_event(uint16_t value);
  uint16_t used_idx() const;
  uint16_t used_flags() const;
  uint16_t avail_event() const;
  UsedElement used_at(uint16_t slot) const;

  GuestAddress desc_table() const { return desc_; }
  GuestAddress avail_ring() const { return avail_; }
  GuestAddress used_ring() const { return used_; }

 private:
  uint16_t alloc_descriptor();

  const GuestMemory& memory_;
  GuestAllocator& allocator_;
  uint16_t size_;
  GuestAddress desc_;
  GuestAddress avail_;
  GuestAddress used_;
  uint16_t avail_idx_ = 0;
  uint16_t last_used_ = 0;
  std::vector<uint16_t> free_;
  std::map<uint16_t, std::vector<uint16_t>> chains_;  // head -> descriptors it holds
};

// Records what the device signalled.
class RecordingInterrupt : public Interrupt {
 public:
  void signal_used_queue(uint16_t queue_index) override { ++used[queue_index]; }
  void signal_config_change() override { ++config_changes; }
  std::map<uint16_t, int> used;
  int config_changes = 0;
};

// Guest memory helpers.
GuestAddress put_bytes(const GuestMemory& memory, GuestAllocator& allocator,
                       std::span<const uint8_t> data);
std::vector<uint8_t> get_bytes(const GuestMemory& memory, GuestAddress addr, uint64_t len);

}  // namespace ember::vmm::virtio::testing
