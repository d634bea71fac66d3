#include "vmm/devices/virtio/block/request.h"

#include <array>
#include <cstring>

#include "vmm/devices/virtio/block/disk_file.h"

namespace ember::vmm::virtio {
namespace {

BlockRequest fail(BlockRequest r, uint8_t status, std::string why) {
  r.outcome = BlockRequest::Outcome::kFail;
  r.status = status;
  r.error = std::move(why);
  return r;
}

}  // namespace

BlockRequest parse_block_request(const GuestMemory& memory, const DescriptorChain& chain,
                                 uint64_t capacity_sectors, bool read_only) {
  BlockRequest r;
  if (chain.writable_len() == 0) {
    r.error = "no device-writable byte for the status";
    return r;
  }
  if (chain.readable_len() < kBlockHeaderSize) {
    return fail(
        r, kBlockStatusIoErr,
        "request header is " + std::to_string(chain.readable_len()) + " bytes, expected 16");
  }
  std::array<uint8_t, kBlockHeaderSize> header{};
  ChainCursor(memory, chain.readable()).read(header);
  std::memcpy(&r.type, header.data(), 4);
  std::memcpy(&r.sector, header.data() + 8, 8);

  uint32_t extra_readable = chain.readable_len() - kBlockHeaderSize;
  uint32_t extra_writable = chain.writable_len() - 1;
  switch (r.type) {
    case kBlockTypeIn:
    case kBlockTypeGetId:
      if (extra_readable != 0)
        return fail(r, kBlockStatusIoErr, "device-readable data after the header");
      r.data_len = extra_writable;
      break;
    case kBlockTypeOut:
      if (extra_writable != 0)
        return fail(r, kBlockStatusIoErr, "device-writable data before the status");
      if (read_only) return fail(r, kBlockStatusIoErr, "write to a read-only drive");
      r.data_len = extra_readable;
      break;
    case kBlockTypeFlush:
      if (extra_readable != 0 || extra_writable != 0)
        return fail(r, kBlockStatusIoErr, "flush carries data");
      break;
    default:
      return fail(r, kBlockStatusUnsupported, "unsupported request type " + std::to_string(r.type));
  }

  if (r.type == kBlockTypeIn || r.type == kBlockTypeOut) {
    if (r.data_len % kSectorSize != 0) {
      return fail(r, kBlockStatusIoErr,
                  "data length " + std::to_string(r.data_len) + " is not a multiple of 512");
    }
    uint64_t sectors = r.data_len / kSectorSize;
    if (r.sector > capacity_sectors || sectors > capacity_sectors - r.sector) {
      return fail(r, kBlockStatusIoErr,
                  "sectors [" + std::to_string(r.sector) + ", +" + std::to_string(sectors) +
                      ") are beyond the capacity " + std::to_string(capacity_sectors));
    }
  }
  if (r.type == kBlockTypeGetId && r.data_len < kBlockIdBytes) {
    return fail(r, kBlockStatusIoErr,
                "GET_ID buffer is " + std::to_string(r.data_len) + " bytes, expected 20");
  }
  r.outcome = BlockRequest::Outcome::kExecute;
  r.status = kBlockStatusOk;
  return r;
}

}  // namespace ember::vmm::virtio
