// Parsing a virtio-blk request out of a descriptor chain (virtio 1.2 §5.2.6).
//
// With VIRTIO_F_VERSION_1 the layout is free (§2.6.4 "message framing"): the
// device-readable bytes are the 16-byte header followed by OUT data, the
// device-writable bytes are IN/GET_ID data followed by the status byte,
// which is always the last writable byte. Buffers may be split anywhere.
#pragma once

#include <cstdint>
#include <string>

#include "vmm/devices/virtio/descriptor_chain.h"

namespace ember::vmm::virtio {

// virtio 1.2 §5.2.6 request types and status values.
inline constexpr uint32_t kBlockTypeIn = 0;
inline constexpr uint32_t kBlockTypeOut = 1;
inline constexpr uint32_t kBlockTypeFlush = 4;
inline constexpr uint32_t kBlockTypeGetId = 8;
inline constexpr uint8_t kBlockStatusOk = 0;
inline constexpr uint8_t kBlockStatusIoErr = 1;
inline constexpr uint8_t kBlockStatusUnsupported = 2;
inline constexpr uint32_t kBlockHeaderSize = 16;

struct BlockRequest {
  enum class Outcome {
    kExecute,    // well-formed: run it
    kFail,       // answer with `status` (IOERR or UNSUPP) and no data
    kMalformed,  // not even a status byte to write: complete with length 0
  };
  Outcome outcome = Outcome::kMalformed;
  uint32_t type = 0;
  uint64_t sector = 0;
  // IN/GET_ID: writable bytes before the status byte. OUT: readable bytes
  // after the header. FLUSH: 0.
  uint32_t data_len = 0;
  uint8_t status = kBlockStatusIoErr;
  std::string error;  // why it is kFail/kMalformed, for the log

  uint64_t offset() const { return sector * 512; }
};

// Parses and validates `chain` for a disk of `capacity_sectors`. Never
// throws for guest-controlled content.
BlockRequest parse_block_request(const GuestMemory& memory, const DescriptorChain& chain,
                                 uint64_t capacity_sectors, bool read_only);

}  // namespace ember::vmm::virtio
