#include "proto/ttrpc/frame.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace ember::ttrpc {
namespace {

void put_be32(std::uint8_t* out, std::uint32_t value) {
  out[0] = static_cast<std::uint8_t>(value >> 24);
  out[1] = static_cast<std::uint8_t>(value >> 16);
  out[2] = static_cast<std::uint8_t>(value >> 8);
  out[3] = static_cast<std::uint8_t>(value);
}

std::uint32_t get_be32(const std::uint8_t* in) {
  return (std::uint32_t{in[0]} << 24) | (std::uint32_t{in[1]} << 16) | (std::uint32_t{in[2]} << 8) |
         std::uint32_t{in[3]};
}

}  // namespace

std::array<std::uint8_t, kFrameHeaderSize> encode_header(const FrameHeader& header) {
  std::array<std::uint8_t, kFrameHeaderSize> out{};
  put_be32(out.data(), header.length);
  put_be32(out.data() + 4, header.stream_id);
  out[8] = header.type;
  out[9] = header.flags;
  return out;
}

FrameHeader decode_header(std::span<const std::uint8_t, kFrameHeaderSize> bytes) {
  return FrameHeader{get_be32(bytes.data()), get_be32(bytes.data() + 4), bytes[8], bytes[9]};
}

std::string encode_frame(std::uint32_t stream_id, FrameType type, std::string_view payload,
                         std::uint8_t flags) {
  auto header = encode_header(FrameHeader{static_cast<std::uint32_t>(payload.size()), stream_id,
                                          static_cast<std::uint8_t>(type), flags});
  std::string out;
  out.reserve(kFrameHeaderSize + payload.size());
  out.append(reinterpret_cast<const char*>(header.data()), header.size());
  out.append(payload);
  return out;
}

void FrameReader::feed(std::span<const std::uint8_t> bytes) {
  while (!bytes.empty()) {
    switch (state_) {
      case State::kHeader: {
        std::size_t n = std::min(bytes.size(), kFrameHeaderSize - header_filled_);
        std::memcpy(header_bytes_.data() + header_filled_, bytes.data(), n);
        header_filled_ += n;
        bytes = bytes.subspan(n);
        if (header_filled_ < kFrameHeaderSize) break;
        header_filled_ = 0;
        header_ = decode_header(header_bytes_);
        remaining_ = header_.length;
        if (header_.length > kMaxFrameLength) {
          state_ = State::kDiscard;
        } else if (header_.length == 0) {
          ready_.push_back(Frame{header_, {}, false});
        } else {
          state_ = State::kPayload;
        }
        break;
      }
      case State::kPayload: {
        std::size_t n = std::min<std::size_t>(bytes.size(), remaining_);
        payload_.append(reinterpret_cast<const char*>(bytes.data()), n);
        remaining_ -= static_cast<std::uint32_t>(n);
        bytes = bytes.subspan(n);
        if (remaining_ == 0) {
          ready_.push_back(Frame{header_, std::exchange(payload_, {}), false});
          state_ = State::kHeader;
        }
        break;
      }
      case State::kDiscard: {
        std::size_t n = std::min<std::size_t>(bytes.size(), remaining_);
        remaining_ -= static_cast<std::uint32_t>(n);
        bytes = bytes.subspan(n);
        if (remaining_ == 0) {
          ready_.push_back(Frame{header_, {}, true});
          state_ = State::kHeader;
        }
        break;
      }
    }
  }
}

std::optional<FrameReader::Frame> FrameReader::next() {
  if (ready_.empty()) return std::nullopt;
  Frame frame = std::move(ready_.front());
  ready_.pop_front();
  return frame;
}

bool FrameReader::mid_frame() const { return state_ != State::kHeader || header_filled_ > 0; }

}  // namespace ember::ttrpc
