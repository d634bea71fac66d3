#include "vmm/devices/virtio/vsock/packet.h"

namespace ember::vmm::virtio {

std::optional<TxPacket> parse_tx_packet(const GuestMemory& memory, const DescriptorChain& chain,
                                        std::string& why) {
  if (chain.readable_len() < sizeof(VsockHeader)) {
    why = "TX packet of " + std::to_string(chain.readable_len()) + " bytes has no complete header";
    return std::nullopt;
  }
  ChainCursor cursor(memory, chain.readable());
  VsockHeader header;
  cursor.read(std::span<uint8_t>(reinterpret_cast<uint8_t*>(&header), sizeof header));
  if (header.len > kVsockMaxPayload) {
    why = "TX packet announces " + std::to_string(header.len) + " payload bytes, more than 64 KiB";
    return std::nullopt;
  }
  if (header.len > cursor.remaining()) {
    why = "TX packet announces " + std::to_string(header.len) + " payload bytes but carries " +
          std::to_string(cursor.remaining());
    return std::nullopt;
  }
  return TxPacket{header, cursor};
}

std::string describe(const VsockHeader& h) {
  return "op " + std::to_string(h.op) + " " + std::to_string(h.src_cid) + ":" +
         std::to_string(h.src_port) + " -> " + std::to_string(h.dst_cid) + ":" +
         std::to_string(h.dst_port) + " len " + std::to_string(h.len) + " flags " +
         std::to_string(h.flags);
}

}  // namespace ember::vmm::virtio
