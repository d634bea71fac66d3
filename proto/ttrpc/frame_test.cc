// Byte-exact checks of the frame codec and of the Request/Response envelope
// against hand-computed bytes (reference §2).
#include "proto/ttrpc/frame.h"

#include <gtest/gtest.h>

#include "proto/ttrpc/test_peer.h"
#include "ttrpc/request.pb.h"

namespace ember::ttrpc {
namespace {

using testing::hex;
using testing::unhex;

std::span<const std::uint8_t> bytes_of(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

TEST(Frame, HeaderOfContainerdsFirstFrameMatchesCapturedBytes) {
  // First frame containerd 1.6.20 sends: 248-byte unary Request on stream 1.
  FrameHeader header{0xf8, 1, static_cast<std::uint8_t>(FrameType::kRequest), 0};
  auto bytes = encode_header(header);
  EXPECT_EQ(hex(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size())),
            "000000f8000000010100");
  EXPECT_EQ(decode_header(bytes), header);
}

TEST(Frame, HeaderFieldsAreBigEndian) {
  auto bytes = encode_header(FrameHeader{0x00123456, 0x89abcdef, 2, 0x05});
  EXPECT_EQ(hex(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size())),
            "0012345689abcdef0205");
}

// Request{service="containerd.task.v2.Task", method="State",
// payload=StateRequest{id="abc"}, timeout_nano=2e9,
// metadata=[{"containerd-namespace-ttrpc","k8s.io"}]}, computed by hand:
//   0a 17 "containerd.task.v2.Task"     field 1, 23 bytes
//   12 05 "State"                       field 2
//   1a 05 0a 03 "abc"                   field 3 (StateRequest.id = field 1)
//   20 80 a8 d6 b9 07                   field 4, varint 2000000000
//   2a 24 0a 1a "containerd-namespace-ttrpc" 12 06 "k8s.io"   field 5
// = 83 (0x53) bytes, on stream 1.
const std::string kGoldenRequestFrame = unhex(
    "00000053 00000001 01 00"
    "0a 17 636f6e7461696e6572642e7461736b2e76322e5461736b"
    "12 05 5374617465"
    "1a 05 0a03616263"
    "20 80a8d6b907"
    "2a 24 0a1a 636f6e7461696e6572642d6e616d6573706163652d7474727063 1206 6b38732e696f");

TEST(Frame, RequestFrameMatchesHandComputedBytes) {
  ::ttrpc::Request request;
  request.set_service("containerd.task.v2.Task");
  request.set_method("State");
  request.set_payload(unhex("0a03616263"));
  request.set_timeout_nano(2'000'000'000);
  auto* kv = request.add_metadata();
  kv->set_key("containerd-namespace-ttrpc");
  kv->set_value("k8s.io");

  EXPECT_EQ(hex(encode_frame(1, FrameType::kRequest, request.SerializeAsString())),
            hex(kGoldenRequestFrame));
}

TEST(Frame, ResponseFramesMatchHandComputedBytes) {
  // Success: empty status (code 0, what Go's server sends) + payload
  // StateResponse{id="abc", pid=42, status=RUNNING} = 0a03616263 182a 2002.
  ::ttrpc::Response ok;
  ok.mutable_status();
  ok.set_payload(unhex("0a03616263182a2002"));
  EXPECT_EQ(hex(encode_frame(7, FrameType::kResponse, ok.SerializeAsString())),
            "0000000d"
            "00000007"
            "0200"
            "0a00"
            "1209"
            "0a03616263182a2002");

  // Error: status{code=5 NOT_FOUND, message="container abc not found" (23)}.
  ::ttrpc::Response error;
  error.mutable_status()->set_code(5);
  error.mutable_status()->set_message("container abc not found");
  EXPECT_EQ(hex(encode_frame(3, FrameType::kResponse, error.SerializeAsString())),
            "0000001d"
            "00000003"
            "0200"
            "0a1b"
            "0805"
            "1217" +
                hex("container abc not found"));
}

TEST(FrameReader, DecodesFramesFedOneByteAtATime) {
  std::string stream = kGoldenRequestFrame + encode_frame(3, FrameType::kResponse, "xy");
  FrameReader reader;
  std::vector<FrameReader::Frame> frames;
  std::vector<std::size_t> completed_at;  // bytes fed when each frame appeared
  for (std::size_t i = 0; i < stream.size(); ++i) {
    reader.feed(bytes_of(std::string_view(&stream[i], 1)));
    while (auto f = reader.next()) {
      frames.push_back(std::move(*f));
      completed_at.push_back(i + 1);
    }
  }
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(completed_at[0], kGoldenRequestFrame.size());
  EXPECT_EQ(completed_at[1], stream.size());
  EXPECT_EQ(frames[0].header, (FrameHeader{0x53, 1, 1, 0}));
  EXPECT_EQ(frames[0].payload, kGoldenRequestFrame.substr(kFrameHeaderSize));
  EXPECT_EQ(frames[1].header.stream_id, 3u);
  EXPECT_EQ(frames[1].payload, "xy");
  EXPECT_FALSE(reader.mid_frame());
}

TEST(FrameReader, DecodesSeveralFramesFromOneChunk) {
  std::string stream = encode_frame(1, FrameType::kRequest, "") +
                       encode_frame(3, FrameType::kRequest, "abc") +
                       encode_frame(5, FrameType::kData, "z");
  FrameReader reader;
  reader.feed(bytes_of(stream));
  std::vector<std::uint32_t> ids;
  while (auto f = reader.next()) ids.push_back(f->header.stream_id);
  EXPECT_EQ(ids, (std::vector<std::uint32_t>{1, 3, 5}));
}

TEST(FrameReader, SkipsOversizeFrameAndReportsItsStreamId) {
  const std::uint32_t length = kMaxFrameLength + 1;
  auto header = encode_header(FrameHeader{length, 9, 1, 0});
  FrameReader reader;
  reader.feed(header);
  std::string chunk(64 * 1024, 'x');
  std::uint32_t left = length;
  while (left > 0) {
    std::uint32_t n = std::min<std::uint32_t>(left, chunk.size());
    EXPECT_FALSE(reader.next()) << "oversize frame reported before its bytes were skipped";
    reader.feed(bytes_of(std::string_view(chunk.data(), n)));
    left -= n;
  }
  reader.feed(bytes_of(encode_frame(11, FrameType::kRequest, "ok")));
  auto skipped = reader.next();
  ASSERT_TRUE(skipped);
  EXPECT_TRUE(skipped->oversize);
  EXPECT_EQ(skipped->header.stream_id, 9u);
  EXPECT_EQ(skipped->header.length, length);
  EXPECT_TRUE(skipped->payload.empty());
  auto next = reader.next();
  ASSERT_TRUE(next);
  EXPECT_FALSE(next->oversize);
  EXPECT_EQ(next->payload, "ok");
}

TEST(FrameReader, AcceptsFrameOfExactlyTheMaximumLength) {
  std::string payload(kMaxFrameLength, 'p');
  FrameReader reader;
  reader.feed(bytes_of(encode_frame(1, FrameType::kRequest, payload)));
  auto frame = reader.next();
  ASSERT_TRUE(frame);
  EXPECT_FALSE(frame->oversize);
  EXPECT_EQ(frame->payload.size(), kMaxFrameLength);
}

TEST(FrameReader, ReportsTruncatedFrame) {
  FrameReader reader;
  EXPECT_FALSE(reader.mid_frame());
  reader.feed(bytes_of(kGoldenRequestFrame.substr(0, 4)));
  EXPECT_TRUE(reader.mid_frame());
  reader.feed(bytes_of(kGoldenRequestFrame.substr(4, 20)));
  EXPECT_TRUE(reader.mid_frame());
  EXPECT_FALSE(reader.next());
}

}  // namespace
}  // namespace ember::ttrpc
