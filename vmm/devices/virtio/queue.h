// The device side of a split virtqueue (virtio 1.2 §2.7).
//
// Everything in the rings is written by an untrusted driver. The queue checks
// the layout once when it is built, and every chain when it is popped: a
// chain that is malformed but has a sane head (a loop, a buffer outside guest
// RAM, a readable buffer after a writable one, nested indirect tables, more
// than 4 GiB in total...) is handed back to the driver as used with length 0
// and reported; a ring that cannot be trusted any more (head index out of
// range, avail idx running ahead by more than the queue size) makes the queue
// broken: it stops serving and the device asks for a reset (§2.1.2).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "vmm/common/error.h"
#include "vmm/devices/virtio/descriptor_chain.h"
#include "vmm/devices/virtio/virtio_device.h"

namespace ember::vmm::virtio {

// virtio 1.2 §2.7.5 / §2.7.6 / §2.7.8 flag bits.
inline constexpr uint16_t kDescFlagNext = 1;
inline constexpr uint16_t kDescFlagWrite = 2;
inline constexpr uint16_t kDescFlagIndirect = 4;
inline constexpr uint16_t kAvailFlagNoInterrupt = 1;
inline constexpr uint16_t kUsedFlagNoNotify = 1;

// Largest indirect table the device accepts. The spec bounds a chain by the
// queue size (§2.7.5.3.1); we accept up to QEMU's VIRTQUEUE_MAX_SIZE so that
// drivers sizing indirect tables by seg_max still work with small queues.
inline constexpr uint32_t kMaxIndirectDescriptors = 1024;

// The queue's layout was rejected when the device was activated.
class QueueError : public common::Error {
 public:
  using common::Error::Error;
};

class Queue {
 public:
  // Called once per malformed chain (`fatal` = false) and once when the queue
  // breaks (`fatal` = true). The message names the queue, head and problem.
  using ErrorHandler = std::function<void(const std::string& message, bool fatal)>;

  // Validates size (a power of two <= max_size), alignment (§2.7: 16/2/4) and
  // that all three rings (with the event-idx words) lie in guest RAM; throws
  // QueueError naming the queue and problem. Takes the ring positions from
  // `state` (vhost-user SET_VRING_BASE / snapshot restore).
  Queue(const GuestMemory& memory, const QueueState& state, uint64_t acked_features,
        std::string name = "queue");

  void set_error_handler(ErrorHandler handler) { on_error_ = std::move(handler); }

  // The next available chain, or std::nullopt when the driver has posted
  // nothing new or the queue is broken. Malformed chains are completed with
  // length 0 and skipped (see skipped_chains()).
  std::optional<DescriptorChain> pop();
  // Same, reusing `chain`'s storage (no allocation once warmed up).
  bool pop(DescriptorChain& chain);
  // Puts back the chain returned by the last pop(), which must not have been
  // added to the used ring. Used when a device cannot serve it yet (rate
  // limiter empty, no data to fill it with).
  void undo_pop();
  // Puts back the last `count` chains returned by pop(). Only valid when no
  // malformed chain was skipped in between (compare skipped_chains()).
  void undo_pops(uint16_t count);

  // Publishes `head` as used with `len` bytes written into its writable part
  // (store-release of used->idx, §2.7.8).
  void add_used(uint16_t head, uint32_t len);

  // True when the driver wants an interrupt for the entries added since the
  // previous call: VIRTQ_AVAIL_F_NO_INTERRUPT clear (§2.7.7), or with
  // VIRTIO_F_EVENT_IDX used_event crossed (§2.7.10). Full fence before
  // reading the driver's suppression word.
  bool needs_interrupt();

  // Device → driver notification suppression (§2.7.7.1, §2.7.10): while
  // disabled the driver need not kick. enable_notifications() re-arms and
  // returns true if buffers arrived in the meantime (the caller must process
  // them, or they would wait for a kick that never comes).
  void disable_notifications();
  bool enable_notifications();

  // Number of chains the driver has made available and we have not popped
  // (0 when broken).
  uint16_t pending();

  bool broken() const { return broken_; }
  uint16_t size() const { return size_; }
  uint64_t skipped_chains() const { return skipped_chains_; }
  const std::string& name() const { return name_; }
  // Current ring positions for vhost-user GET_VRING_BASE and snapshots.
  QueueState state() const;

 private:
  enum class WalkResult { kOk, kInvalid, kFatal };
  WalkResult walk(uint16_t head, DescriptorChain& chain, std::string& why);
  bool append(DescriptorChain& chain, uint64_t addr, uint32_t len, uint16_t flags,
              std::string& why);
  void fail(const std::string& message);
  uint16_t load_avail_idx();
  GuestAddress used_event_addr() const { return avail_ + 4 + 2 * uint64_t(size_); }
  GuestAddress avail_event_addr() const { return used_ + 4 + 8 * uint64_t(size_); }

  const GuestMemory* memory_;
  std::string name_;
  QueueState initial_;
  uint16_t size_;
  GuestAddress desc_;
  GuestAddress avail_;
  GuestAddress used_;
  bool event_idx_;
  bool indirect_;

  uint16_t next_avail_;
  uint16_t next_used_;
  uint16_t avail_idx_cache_;
  uint16_t last_pop_from_ = 0;  // next_avail_ before the chain last returned
  uint16_t signalled_used_;     // next_used_ at the last needs_interrupt()
  bool notifications_disabled_ = false;
  bool broken_ = false;
  uint64_t skipped_chains_ = 0;
  ErrorHandler on_error_;
};

}  // namespace ember::vmm::virtio
