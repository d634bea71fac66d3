// A small, honest vhost-user frontend for tests: it speaks the protocol over
// a real unix socket, shares guest RAM as a real memfd (as QEMU's
// memory-backend-memfd,share=on does), lays out real split virtqueues in it
// with the virtio test driver (DriverQueue), kicks real eventfds and waits
// for calls on real eventfds. Raw senders let tests send hostile messages.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "vmm/common/event_fd.h"
#include "vmm/common/unique_fd.h"
#include "vmm/devices/virtio/testing/driver_queue.h"
#include "vmm/vhost_user/protocol.h"
#include "vmm/vstate/guest_memory.h"

namespace ember::vmm::vhost_user::testing {

// Guest RAM in a memfd, mapped shared by the test ("QEMU"); the region the
// frontend announces uses this mapping's host address as its user address.
class SharedGuestMemory {
 public:
  SharedGuestMemory(GuestAddress start, uint64_t size);

  const GuestMemory& memory() const { return memory_; }
  int fd() const { return memory_.regions()[0].fd.get(); }
  GuestAddress start() const { return start_; }
  uint64_t size() const { return size_; }
  // The frontend ("user") address of guest address `gpa`.
  uint64_t user_address(GuestAddress gpa) const;
  MemoryRegionDesc region() const;

 private:
  GuestAddress start_;
  uint64_t size_;
  GuestMemory memory_;
};

// One ring as the frontend drives it: the driver's queue plus kick and call.
struct FrontendRing {
  FrontendRing(const GuestMemory& memory, virtio::testing::GuestAllocator& allocator, uint16_t size)
      : queue(memory, allocator, size) {}
  virtio::testing::DriverQueue queue;
  common::EventFd kick;
  common::EventFd call;

  void notify() const { kick.signal(); }
  // Waits until the backend signalled the call eventfd; consumes it.
  bool wait_call(std::chrono::milliseconds timeout) const;
};

class FakeFrontend {
 public:
  explicit FakeFrontend(common::UniqueFd socket) : socket_(std::move(socket)) {}
  // Connects to a listening backend, retrying for a moment while the socket
  // appears. Throws common::Error.
  static FakeFrontend connect(const std::string& path);

  int fd() const { return socket_.get(); }

  // --- raw protocol -------------------------------------------------------
  void send(Request request, std::span<const uint8_t> payload = {}, std::span<const int> fds = {},
            uint32_t flags = kVersion | kFlagNeedReply);
  template <typename T>
  void send_obj(Request request, const T& payload, std::span<const int> fds = {},
                uint32_t flags = kVersion | kFlagNeedReply) {
    send(request, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&payload), sizeof(T)),
         fds, flags);
  }
  // Bytes exactly as given (may be a broken header).
  void send_bytes(std::span<const uint8_t> bytes, std::span<const int> fds = {});
  // The next reply; throws common::Error on timeout, hang-up, or a reply to
  // another request.
  Message receive_reply(Request request,
                        std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Waits for REPLY_ACK's u64 and throws unless it is 0.
  void expect_ack(Request request);
  // True when the backend closed the connection within `timeout`.
  bool wait_closed(std::chrono::milliseconds timeout = std::chrono::seconds(5));

  // --- requests (setters ask for REPLY_ACK and check it) ------------------
  uint64_t get_features();
  void set_features(uint64_t features);
  uint64_t get_protocol_features();
  void set_protocol_features(uint64_t features);
  uint64_t get_queue_num();
  void set_owner();
  void set_mem_table(std::span<const MemoryRegionDesc> regions, std::span<const int> fds);
  void set_vring_num(uint32_t index, uint32_t num);
  void set_vring_addr(uint32_t index, uint64_t desc, uint64_t avail, uint64_t used);
  void set_vring_base(uint32_t index, uint32_t base);
  uint32_t get_vring_base(uint32_t index);
  void set_vring_kick(uint32_t index, int fd);
  void set_vring_call(uint32_t index, int fd);
  void set_vring_enable(uint32_t index, bool enable);
  std::vector<uint8_t> get_config(uint32_t offset, uint32_t size);
  // Creates the backend channel (a socketpair) and hands one end over.
  void open_backend_channel();
  // The next backend → frontend request header, if one arrives in time.
  std::optional<Header> read_backend_request(std::chrono::milliseconds timeout);

  // --- QEMU's sequences ----------------------------------------------------
  // vhost_user_backend_init: features, protocol features (all offered ones),
  // SET_OWNER, the backend channel when offered. Returns the device features.
  uint64_t handshake();
  // vhost_dev_start for `rings` (ring i = vring i): SET_FEATURES, the memory
  // table, then per ring NUM, BASE, ADDR, KICK, CALL, and finally ENABLE.
  void start(uint64_t features, const SharedGuestMemory& memory, std::vector<FrontendRing*> rings,
             std::vector<uint16_t> bases = {});
  // vhost_dev_stop: disable every ring, then GET_VRING_BASE; returns bases.
  std::vector<uint32_t> stop(size_t ring_count);

 private:
  common::UniqueFd socket_;
  common::UniqueFd backend_channel_;
};

}  // namespace ember::vmm::vhost_user::testing
