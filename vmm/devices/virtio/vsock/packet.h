// virtio-vsock packets (virtio 1.2 §5.10.6): a 44-byte little-endian header
// followed by up to 64 KiB of stream payload, carried in one descriptor chain
// (device-readable on the TX queue, device-writable on the RX queue).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "vmm/devices/virtio/descriptor_chain.h"

namespace ember::vmm::virtio {

inline constexpr uint64_t kVsockHostCid = 2;
inline constexpr uint16_t kVsockTypeStream = 1;

enum VsockOp : uint16_t {
  kVsockOpRequest = 1,
  kVsockOpResponse = 2,
  kVsockOpRst = 3,
  kVsockOpShutdown = 4,
  kVsockOpRw = 5,
  kVsockOpCreditUpdate = 6,
  kVsockOpCreditRequest = 7,
};

inline constexpr uint32_t kVsockShutdownRcv = 1;   // the sender will receive no more
inline constexpr uint32_t kVsockShutdownSend = 2;  // the sender will send no more

// Largest payload of one packet (Linux's VIRTIO_VSOCK_MAX_PKT_BUF_SIZE).
inline constexpr uint32_t kVsockMaxPayload = 64 * 1024;

#pragma pack(push, 1)
struct VsockHeader {
  uint64_t src_cid = 0;
  uint64_t dst_cid = 0;
  uint32_t src_port = 0;
  uint32_t dst_port = 0;
  uint32_t len = 0;
  uint16_t type = 0;
  uint16_t op = 0;
  uint32_t flags = 0;
  uint32_t buf_alloc = 0;
  uint32_t fwd_cnt = 0;
};
#pragma pack(pop)
static_assert(sizeof(VsockHeader) == 44);

// A packet the guest sent: its header, and a cursor positioned on the first
// payload byte. At least `header.len` bytes follow (parse_tx_packet checked);
// bytes beyond header.len are padding and ignored.
struct TxPacket {
  VsockHeader header;
  ChainCursor payload;
};

// Reads the header of a TX chain and checks that the payload it announces is
// there and at most 64 KiB. On failure returns std::nullopt with `why` set.
std::optional<TxPacket> parse_tx_packet(const GuestMemory& memory, const DescriptorChain& chain,
                                        std::string& why);

std::string describe(const VsockHeader& h);  // for logs: "op 5 2:1024 -> 3:52 len 100"

}  // namespace ember::vmm::virtio
