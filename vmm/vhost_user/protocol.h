// The vhost-user wire format (QEMU docs/interop/vhost-user.rst): message
// types, flags, payload layouts, and a non-blocking reader that keeps the file
// descriptors passed with SCM_RIGHTS attached to the message they came with.
//
// A message is a 12-byte header (request, flags, size) followed by `size`
// bytes of payload, in host byte order. The frontend (QEMU) sends header and
// payload in one sendmsg() with any fds attached; the reader never reads past
// the end of the current message, so fds cannot be attributed to the wrong one.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "vmm/common/error.h"
#include "vmm/common/unique_fd.h"

namespace ember::vmm::vhost_user {

// Front-end → back-end requests (vhost-user.rst "Front-end message types").
enum class Request : uint32_t {
  kGetFeatures = 1,
  kSetFeatures = 2,
  kSetOwner = 3,
  kResetOwner = 4,
  kSetMemTable = 5,
  kSetLogBase = 6,
  kSetLogFd = 7,
  kSetVringNum = 8,
  kSetVringAddr = 9,
  kSetVringBase = 10,
  kGetVringBase = 11,
  kSetVringKick = 12,
  kSetVringCall = 13,
  kSetVringErr = 14,
  kGetProtocolFeatures = 15,
  kSetProtocolFeatures = 16,
  kGetQueueNum = 17,
  kSetVringEnable = 18,
  kSendRarp = 19,
  kNetSetMtu = 20,
  kSetBackendReqFd = 21,  // "SET_SLAVE_REQ_FD" in QEMU 7.2
  kIotlbMsg = 22,
  kSetVringEndian = 23,
  kGetConfig = 24,
  kSetConfig = 25,
  kGetInflightFd = 31,
  kSetInflightFd = 32,
  kResetDevice = 34,
  kVringKick = 35,
  kGetMaxMemSlots = 36,
  kAddMemReg = 37,
  kRemMemReg = 38,
  kSetStatus = 39,
  kGetStatus = 40,
};

// Back-end → front-end requests on the backend channel ("SLAVE_*" in 7.2).
enum class BackendRequest : uint32_t {
  kIotlbMsg = 1,
  kConfigChangeMsg = 2,
  kVringHostNotifierMsg = 3,
};

// "GET_FEATURES" style name for log lines; "request 99" when unknown.
std::string request_name(uint32_t request);

// Header flags: version in bits 0-1, reply bit 2, need_reply bit 3.
inline constexpr uint32_t kVersion = 0x1;
inline constexpr uint32_t kVersionMask = 0x3;
inline constexpr uint32_t kFlagReply = 1u << 2;
inline constexpr uint32_t kFlagNeedReply = 1u << 3;

// Virtio feature bit 30, reused by vhost-user to announce protocol features.
inline constexpr unsigned kFeatureProtocolFeatures = 30;

// Protocol feature bits (vhost-user.rst "Protocol features").
inline constexpr unsigned kProtocolMq = 0;
inline constexpr unsigned kProtocolLogShmfd = 1;
inline constexpr unsigned kProtocolReplyAck = 3;
inline constexpr unsigned kProtocolBackendReq = 5;  // "SLAVE_REQ"
inline constexpr unsigned kProtocolConfig = 9;
inline constexpr unsigned kProtocolBackendSendFd = 10;
inline constexpr unsigned kProtocolInflightShmfd = 12;
inline constexpr unsigned kProtocolResetDevice = 13;
inline constexpr unsigned kProtocolInbandNotifications = 14;
inline constexpr unsigned kProtocolConfigureMemSlots = 15;
inline constexpr unsigned kProtocolStatus = 16;

// SET_VRING_KICK/CALL/ERR payload: ring index in bits 0-7, "no fd" in bit 8.
inline constexpr uint64_t kVringIndexMask = 0xff;
inline constexpr uint64_t kVringNoFdFlag = 1u << 8;

// SET_MEM_TABLE carries at most this many regions (and as many fds).
inline constexpr uint32_t kMaxMemoryRegions = 8;
// Most fds any message may carry.
inline constexpr size_t kMaxFds = kMaxMemoryRegions;
// GET/SET_CONFIG: the largest config space a frontend may ask for
// (VHOST_USER_MAX_CONFIG_SIZE).
inline constexpr uint32_t kMaxConfigSize = 256;
// Larger than any payload this backend understands (the memory table with 8
// regions is 264 bytes, GET_CONFIG 268); anything bigger is refused unread.
inline constexpr uint32_t kMaxPayloadSize = 4096;
// Split virtqueues are at most 32768 entries (virtio 1.2 §2.7).
inline constexpr uint32_t kMaxQueueSize = 32768;

struct Header {
  uint32_t request = 0;
  uint32_t flags = 0;
  uint32_t size = 0;
};
static_assert(sizeof(Header) == 12);

// struct vhost_vring_state
struct VringState {
  uint32_t index = 0;
  uint32_t num = 0;
};
static_assert(sizeof(VringState) == 8);

// struct vhost_vring_addr: user (frontend virtual) addresses of the rings.
struct VringAddr {
  uint32_t index = 0;
  uint32_t flags = 0;
  uint64_t descriptor = 0;
  uint64_t used = 0;
  uint64_t available = 0;
  uint64_t log = 0;
};
static_assert(sizeof(VringAddr) == 40);

struct MemoryRegionDesc {
  uint64_t guest_address = 0;
  uint64_t size = 0;
  uint64_t user_address = 0;
  uint64_t mmap_offset = 0;
};
static_assert(sizeof(MemoryRegionDesc) == 32);

// The fixed part of SET_MEM_TABLE; `num_regions` MemoryRegionDesc follow.
struct MemoryTableHeader {
  uint32_t num_regions = 0;
  uint32_t padding = 0;
};
static_assert(sizeof(MemoryTableHeader) == 8);

// The fixed part of GET/SET_CONFIG; `size` bytes of config space follow.
struct ConfigHeader {
  uint32_t offset = 0;
  uint32_t size = 0;
  uint32_t flags = 0;
};
static_assert(sizeof(ConfigHeader) == 12);

// The frontend broke the protocol: the connection is dropped with this message.
class ProtocolError : public common::Error {
 public:
  using common::Error::Error;
};

struct Message {
  Header header;
  std::vector<uint8_t> payload;
  std::vector<common::UniqueFd> fds;

  bool need_reply() const { return header.flags & kFlagNeedReply; }
  std::string name() const { return request_name(header.request); }

  // The payload as a T; throws ProtocolError unless it is exactly sizeof(T).
  template <typename T>
  T payload_as() const;
  // The fixed part at the start of a variable-length payload (SET_MEM_TABLE,
  // GET/SET_CONFIG); throws ProtocolError unless there are sizeof(T) bytes.
  template <typename T>
  T payload_prefix_as() const;
  // Throws ProtocolError unless the payload is exactly `size` bytes.
  void expect_size(size_t size) const;
  // Throws ProtocolError unless exactly `count` fds came with the message.
  void expect_fds(size_t count) const;
};

// Reads messages from a non-blocking stream socket without ever blocking: a
// message that arrives in pieces is completed by later calls.
class MessageReader {
 public:
  enum class Status { kMessage, kWouldBlock, kClosed };

  // Reads what is available of the current message. kMessage: `out` holds a
  // complete message. kClosed: the peer hung up between messages. Throws
  // ProtocolError on a malformed header (bad version, reply flag, oversized
  // payload), too many fds, a hang-up in the middle of a message, or a
  // socket error.
  Status read(int fd, Message& out);

 private:
  // Receives up to `len` bytes into `dst`, collecting fds; 0 on EOF, -1 when
  // it would block.
  ssize_t receive(int fd, uint8_t* dst, size_t len);

  Header header_{};
  size_t header_done_ = 0;
  std::vector<uint8_t> payload_;
  size_t payload_done_ = 0;
  std::vector<common::UniqueFd> fds_;
};

// Sends one message (header + payload, plus `fds` as SCM_RIGHTS) with
// MSG_NOSIGNAL. A socket that stays full for `timeout_ms` is an error: a
// frontend that does not read its replies must not stall the backend forever.
// Throws common::Error naming `what` (default: the request's name).
void send_message(int fd, const Header& header, std::span<const uint8_t> payload,
                  std::span<const int> fds = {}, const std::string& what = {},
                  int timeout_ms = 5000);

template <typename T>
T Message::payload_as() const {
  static_assert(std::is_trivially_copyable_v<T>);
  expect_size(sizeof(T));
  T value;
  std::memcpy(&value, payload.data(), sizeof(T));
  return value;
}

template <typename T>
T Message::payload_prefix_as() const {
  static_assert(std::is_trivially_copyable_v<T>);
  if (payload.size() < sizeof(T)) expect_size(sizeof(T));
  T value;
  std::memcpy(&value, payload.data(), sizeof(T));
  return value;
}

}  // namespace ember::vmm::vhost_user
