// ttrpc framing (reference §2): every message is a 10-byte header followed by
// `length` payload bytes.
//
//   offset 0  u32 big-endian  payload length (at most 4 MiB)
//   offset 4  u32 big-endian  stream id (client-initiated: odd)
//   offset 8  u8              type: 1 Request, 2 Response, 3 Data
//   offset 9  u8              flags
//
// Pure byte handling, no IO: the server, the client and the fuzzer share it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace ember::ttrpc {

inline constexpr std::size_t kFrameHeaderSize = 10;
// Largest accepted payload; a frame of exactly 4 MiB is allowed (Go's ttrpc
// rejects `length > 4<<20`).
inline constexpr std::uint32_t kMaxFrameLength = 4u << 20;

enum class FrameType : std::uint8_t { kRequest = 1, kResponse = 2, kData = 3 };

struct FrameHeader {
  std::uint32_t length = 0;
  std::uint32_t stream_id = 0;
  std::uint8_t type = 0;  // a FrameType value, or anything a peer sent
  std::uint8_t flags = 0;

  friend bool operator==(const FrameHeader&, const FrameHeader&) = default;
};

std::array<std::uint8_t, kFrameHeaderSize> encode_header(const FrameHeader& header);
FrameHeader decode_header(std::span<const std::uint8_t, kFrameHeaderSize> bytes);

// Header + payload as one buffer, ready to write. The caller keeps payloads
// within kMaxFrameLength.
std::string encode_frame(std::uint32_t stream_id, FrameType type, std::string_view payload,
                         std::uint8_t flags = 0);

// Incremental decoder: feed() arbitrary chunks of a byte stream, next()
// yields each complete frame. A frame longer than kMaxFrameLength is skipped
// without being buffered and yielded (after its last byte) with oversize=true
// and an empty payload, so the receiver can answer on its stream id and go on.
class FrameReader {
 public:
  struct Frame {
    FrameHeader header;
    std::string payload;
    bool oversize = false;
  };

  void feed(std::span<const std::uint8_t> bytes);
  std::optional<Frame> next();
  // True while bytes of an unfinished frame are held or skipped: at end of
  // stream this means the peer truncated a frame.
  bool mid_frame() const;

 private:
  enum class State { kHeader, kPayload, kDiscard };

  State state_ = State::kHeader;
  std::array<std::uint8_t, kFrameHeaderSize> header_bytes_{};
  std::size_t header_filled_ = 0;
  FrameHeader header_;
  std::string payload_;
  std::uint32_t remaining_ = 0;
  std::deque<Frame> ready_;
};

}  // namespace ember::ttrpc
