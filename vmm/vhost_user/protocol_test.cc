#include "vmm/vhost_user/protocol.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include "vmm/common/event_fd.h"

namespace ember::vmm::vhost_user {
namespace {

struct ProtocolTest : ::testing::Test {
  common::UniqueFd ours, theirs;
  void SetUp() override {
    int pair[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair), 0);
    ours.reset(pair[0]);
    theirs.reset(pair[1]);
  }
  std::vector<uint8_t> bytes(Request request, uint32_t flags, const std::vector<uint8_t>& payload) {
    Header h{static_cast<uint32_t>(request), flags, static_cast<uint32_t>(payload.size())};
    std::vector<uint8_t> out(sizeof h);
    std::memcpy(out.data(), &h, sizeof h);
    out.insert(out.end(), payload.begin(), payload.end());
    return out;
  }
};

TEST_F(ProtocolTest, MessageArrivingInPiecesIsAssembled) {
  MessageReader reader;
  Message msg;
  auto data = bytes(Request::kSetFeatures, kVersion, std::vector<uint8_t>(8, 0xab));
  for (size_t i = 0; i < data.size(); ++i) {
    EXPECT_EQ(reader.read(ours.get(), msg), MessageReader::Status::kWouldBlock) << "byte " << i;
    ASSERT_EQ(::send(theirs.get(), data.data() + i, 1, 0), 1);
  }
  ASSERT_EQ(reader.read(ours.get(), msg), MessageReader::Status::kMessage);
  EXPECT_EQ(msg.header.request, static_cast<uint32_t>(Request::kSetFeatures));
  EXPECT_EQ(msg.payload_as<uint64_t>(), 0xababababababababull);
}

TEST_F(ProtocolTest, FdsStayWithTheMessageTheyCameWith) {
  // Two messages queued back to back, only the second with an fd: the reader
  // never reads past the first, so the fd cannot be attributed to it.
  auto first = bytes(Request::kSetOwner, kVersion, {});
  auto second = bytes(Request::kSetVringKick, kVersion, std::vector<uint8_t>(8, 0));
  ASSERT_EQ(::send(theirs.get(), first.data(), first.size(), 0),
            static_cast<ssize_t>(first.size()));
  common::EventFd kick;
  Header h;
  std::memcpy(&h, second.data(), sizeof h);
  int fds[] = {kick.fd()};
  send_message(theirs.get(), h, std::span<const uint8_t>(second.data() + sizeof h, 8), fds);

  MessageReader reader;
  Message msg;
  ASSERT_EQ(reader.read(ours.get(), msg), MessageReader::Status::kMessage);
  EXPECT_EQ(msg.header.request, static_cast<uint32_t>(Request::kSetOwner));
  EXPECT_TRUE(msg.fds.empty());
  ASSERT_EQ(reader.read(ours.get(), msg), MessageReader::Status::kMessage);
  EXPECT_EQ(msg.header.request, static_cast<uint32_t>(Request::kSetVringKick));
  ASSERT_EQ(msg.fds.size(), 1u);
  // The received fd is the same eventfd.
  common::EventFd received(std::move(msg.fds[0]));
  received.signal(5);
  EXPECT_EQ(kick.consume(), 5u);
}

TEST_F(ProtocolTest, CleanHangUpBetweenMessagesIsClosedNotAnError) {
  theirs.reset();
  MessageReader reader;
  Message msg;
  EXPECT_EQ(reader.read(ours.get(), msg), MessageReader::Status::kClosed);
}

TEST_F(ProtocolTest, HangUpInsideAPayloadIsAnError) {
  auto data = bytes(Request::kSetFeatures, kVersion, std::vector<uint8_t>(8, 1));
  ASSERT_EQ(::send(theirs.get(), data.data(), 15, 0), 15);
  theirs.reset();
  MessageReader reader;
  Message msg;
  EXPECT_THROW(reader.read(ours.get(), msg), ProtocolError);
}

TEST_F(ProtocolTest, ReplyFlagOnARequestIsAnError) {
  auto data = bytes(Request::kGetFeatures, kVersion | kFlagReply, {});
  ASSERT_EQ(::send(theirs.get(), data.data(), data.size(), 0), static_cast<ssize_t>(data.size()));
  MessageReader reader;
  Message msg;
  EXPECT_THROW(reader.read(ours.get(), msg), ProtocolError);
}

TEST_F(ProtocolTest, SendToAPeerThatNeverReadsTimesOut) {
  std::vector<uint8_t> big(kMaxPayloadSize);
  Header h{static_cast<uint32_t>(Request::kGetConfig), kVersion | kFlagReply,
           static_cast<uint32_t>(big.size())};
  EXPECT_THROW(
      {
        for (int i = 0; i < 100000; ++i) send_message(ours.get(), h, big, {}, "reply", 50);
      },
      common::Error);
}

TEST(RequestName, KnownAndUnknown) {
  EXPECT_EQ(request_name(5), "SET_MEM_TABLE");
  EXPECT_EQ(request_name(21), "SET_BACKEND_REQ_FD");
  EXPECT_EQ(request_name(999), "request 999");
}

}  // namespace
}  // namespace ember::vmm::vhost_user
