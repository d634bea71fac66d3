// Client behaviour against a raw peer that plays the server byte by byte.
#include "proto/ttrpc/client.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <future>
#include <mutex>

#include "proto/ttrpc/socket.h"
#include "proto/ttrpc/test_peer.h"

namespace ember::ttrpc {
namespace {

using namespace std::chrono_literals;
using testing::RawPeer;
using testing::socket_pair;

std::string response_bytes(const Status& status, const std::string& payload = {}) {
  ::ttrpc::Response response;
  if (!status.ok()) {
    response.mutable_status()->set_code(static_cast<int>(status.code));
    response.mutable_status()->set_message(status.message);
  }
  response.set_payload(payload);
  return response.SerializeAsString();
}

void answer(RawPeer& peer, std::uint32_t id, const Status& status,
            const std::string& payload = {}) {
  peer.send(encode_frame(id, FrameType::kResponse, response_bytes(status, payload)));
}

struct Result {
  Status status;
  std::string payload;
};

// Collects call_async results.
class Results {
 public:
  Client::Callback callback(int slot) {
    return [this, slot](Status status, std::string payload) {
      std::lock_guard lock(mu_);
      results_[slot] = Result{std::move(status), std::move(payload)};
      cv_.notify_all();
    };
  }
  std::optional<Result> wait(int slot, std::chrono::milliseconds timeout = 5s) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return results_.contains(slot); })) return std::nullopt;
    return results_[slot];
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int, Result> results_;
};

struct Pair {
  Pair(ClientOptions options = {}) {
    auto [a, b] = socket_pair();
    client = std::make_unique<Client>(std::move(a), std::move(options));
    peer = std::make_unique<RawPeer>(std::move(b));
  }
  std::unique_ptr<Client> client;
  std::unique_ptr<RawPeer> peer;
};

::ttrpc::Request parse_request(const FrameReader::Frame& frame) {
  ::ttrpc::Request request;
  EXPECT_TRUE(request.ParseFromString(frame.payload));
  return request;
}

TEST(Client, UsesOddStreamIdsAndMatchesRepliesArrivingOutOfOrder) {
  Pair p;
  Results results;
  CallOptions options{.timeout = 2s, .metadata = {{"containerd-namespace-ttrpc", "k8s.io"}}};
  for (int i = 0; i < 3; ++i) {
    p.client->call_async("containerd.task.v2.Task", "State", "req" + std::to_string(i), options,
                         results.callback(i));
  }
  std::vector<std::uint32_t> ids;
  for (int i = 0; i < 3; ++i) {
    auto frame = p.peer->read_frame();
    ASSERT_TRUE(frame);
    EXPECT_EQ(frame->header.type, static_cast<std::uint8_t>(FrameType::kRequest));
    EXPECT_EQ(frame->header.flags, 0);
    ids.push_back(frame->header.stream_id);
    auto request = parse_request(*frame);
    EXPECT_EQ(request.service(), "containerd.task.v2.Task");
    EXPECT_EQ(request.method(), "State");
    EXPECT_EQ(request.payload(), "req" + std::to_string(i));
    EXPECT_EQ(request.timeout_nano(), 2'000'000'000);
    ASSERT_EQ(request.metadata_size(), 1);
    EXPECT_EQ(request.metadata(0).key(), "containerd-namespace-ttrpc");
    EXPECT_EQ(request.metadata(0).value(), "k8s.io");
  }
  EXPECT_EQ(ids, (std::vector<std::uint32_t>{1, 3, 5}));

  answer(*p.peer, 5, {}, "reply2");
  answer(*p.peer, 1, {}, "reply0");
  answer(*p.peer, 3, {}, "reply1");
  for (int i = 0; i < 3; ++i) {
    auto r = results.wait(i);
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->status.ok()) << r->status.to_string();
    EXPECT_EQ(r->payload, "reply" + std::to_string(i));
  }
}

TEST(Client, ErrorStatusIsThrownAsStatusError) {
  Pair p;
  std::thread server([&] {
    auto frame = p.peer->read_frame();
    if (frame) answer(*p.peer, frame->header.stream_id, {Code::kNotFound, "container x not found"});
  });
  try {
    p.client->call("containerd.task.v2.Task", "State", "");
    ADD_FAILURE() << "call succeeded";
  } catch (const StatusError& e) {
    EXPECT_EQ(e.code(), Code::kNotFound);
    EXPECT_EQ(e.status().message, "container x not found");
    EXPECT_STREQ(e.what(), "NOT_FOUND: container x not found");
  }
  server.join();
}

TEST(Client, TimeoutFailsCallWithDeadlineExceededAndLateReplyIsDropped) {
  Pair p;
  auto start = std::chrono::steady_clock::now();
  try {
    p.client->call("svc", "Slow", "", {.timeout = 100ms});
    ADD_FAILURE() << "call succeeded";
  } catch (const StatusError& e) {
    EXPECT_EQ(e.code(), Code::kDeadlineExceeded);
    EXPECT_NE(e.status().message.find("svc/Slow"), std::string::npos) << e.what();
  }
  EXPECT_GE(std::chrono::steady_clock::now() - start, 100ms);
  auto first = p.peer->read_frame();
  ASSERT_TRUE(first);
  EXPECT_EQ(parse_request(*first).timeout_nano(), 100'000'000);
  answer(*p.peer, 1, {}, "late");  // must not confuse the next call

  std::thread server([&] {
    auto frame = p.peer->read_frame();
    if (frame) answer(*p.peer, frame->header.stream_id, {}, "fresh");
  });
  EXPECT_EQ(p.client->call("svc", "Fast", ""), "fresh");
  server.join();
}

TEST(Client, PeerDisconnectFailsPendingAndLaterCallsWithUnavailable) {
  std::promise<Status> closed_with;
  int close_calls = 0;
  Pair p(ClientOptions{.on_close = [&](const Status& why) {
    if (++close_calls == 1) closed_with.set_value(why);
  }});
  Results results;
  p.client->call_async("svc", "Wait", "", {}, results.callback(0));
  ASSERT_TRUE(p.peer->read_frame());
  p.peer->close();

  auto r = results.wait(0);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status.code, Code::kUnavailable);
  EXPECT_NE(r->status.message.find("connection closed"), std::string::npos) << r->status.message;
  EXPECT_EQ(closed_with.get_future().get().code, Code::kUnavailable);
  EXPECT_TRUE(p.client->closed());
  try {
    p.client->call("svc", "Again", "");
    ADD_FAILURE() << "call on a dead connection succeeded";
  } catch (const StatusError& e) {
    EXPECT_EQ(e.code(), Code::kUnavailable);
  }
  EXPECT_EQ(close_calls, 1);
}

TEST(Client, TruncatedReplyThenDisconnectSaysSo) {
  Pair p;
  Results results;
  p.client->call_async("svc", "M", "", {}, results.callback(0));
  ASSERT_TRUE(p.peer->read_frame());
  p.peer->send(encode_frame(1, FrameType::kResponse, response_bytes({}, "payload")).substr(0, 12));
  p.peer->close();
  auto r = results.wait(0);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status.code, Code::kUnavailable);
  EXPECT_NE(r->status.message.find("middle of a frame"), std::string::npos) << r->status.message;
}

TEST(Client, CloseCancelsPendingCallsWithClearError) {
  Pair p;
  Results results;
  p.client->call_async("svc", "Wait", "", {}, results.callback(0));
  ASSERT_TRUE(p.peer->read_frame());
  p.client->close();
  auto r = results.wait(0);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, (Status{Code::kCancelled, "ttrpc: client closed"}));
  EXPECT_THROW(p.client->call("svc", "After", ""), StatusError);
  EXPECT_TRUE(p.peer->wait_eof());
}

TEST(Client, DestructorCancelsPendingCalls) {
  Pair p;
  Results results;
  p.client->call_async("svc", "Wait", "", {}, results.callback(0));
  ASSERT_TRUE(p.peer->read_frame());
  p.client.reset();
  auto r = results.wait(0, 0ms);
  ASSERT_TRUE(r) << "callback not run before the destructor returned";
  EXPECT_EQ(r->status.code, Code::kCancelled);
}

TEST(Client, OversizeRequestIsRefusedWithoutSendingAnything) {
  Pair p;
  try {
    p.client->call("svc", "Big", std::string(kMaxFrameLength, 'x'));
    ADD_FAILURE() << "oversize call succeeded";
  } catch (const StatusError& e) {
    EXPECT_EQ(e.code(), Code::kResourceExhausted);
  }
  std::thread server([&] {
    auto frame = p.peer->read_frame();
    if (!frame) return;
    EXPECT_EQ(frame->header.stream_id, 1u) << "the refused call must not use up a stream id";
    answer(*p.peer, frame->header.stream_id, {}, "small ok");
  });
  EXPECT_EQ(p.client->call("svc", "Small", "x"), "small ok");
  server.join();
}

TEST(Client, OversizeReplyFailsThatCallAndConnectionKeepsWorking) {
  Pair p;
  Results results;
  p.client->call_async("svc", "Huge", "", {}, results.callback(0));
  ASSERT_TRUE(p.peer->read_frame());
  const std::uint32_t length = kMaxFrameLength + 1;
  auto header = encode_header(FrameHeader{length, 1, 2, 0});
  std::thread sender([&] {
    p.peer->send(std::string(reinterpret_cast<const char*>(header.data()), header.size()));
    p.peer->send(std::string(length, 'z'));
  });
  auto r = results.wait(0, 10s);
  sender.join();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status.code, Code::kResourceExhausted);

  std::thread server([&] {
    auto frame = p.peer->read_frame();
    if (frame) answer(*p.peer, frame->header.stream_id, {}, "fine");
  });
  EXPECT_EQ(p.client->call("svc", "Next", ""), "fine");
  server.join();
}

TEST(Client, BlockingCallFromCallbackIsRefused) {
  Pair p;
  std::promise<std::string> error;
  p.client->call_async("svc", "First", "", {}, [&](Status, std::string) {
    try {
      p.client->call("svc", "Nested", "");
      error.set_value("no exception");
    } catch (const std::logic_error& e) {
      error.set_value(e.what());
    } catch (...) {
      error.set_value("other exception");
    }
  });
  ASSERT_TRUE(p.peer->read_frame());
  answer(*p.peer, 1, {});
  EXPECT_NE(error.get_future().get().find("deadlock"), std::string::npos);
}

TEST(Client, WriteToPeerThatStoppedReadingFailsCallWithoutSigpipe) {
  Pair p;
  ::shutdown(p.peer->fd(), SHUT_RD);
  try {
    p.client->call("svc", "M", std::string(1 << 20, 'x'), {.timeout = 5s});
    ADD_FAILURE() << "call succeeded";
  } catch (const StatusError& e) {
    EXPECT_EQ(e.code(), Code::kUnavailable) << e.what();
  }
}

TEST(Client, RefusesNonSocketFd) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  common::UniqueFd write_end(fds[1]);
  try {
    Client client{common::UniqueFd(fds[0])};
    ADD_FAILURE() << "a pipe was accepted";
  } catch (const common::Error& e) {
    EXPECT_NE(std::string(e.what()).find("as a connection"), std::string::npos) << e.what();
  }
}

TEST(Client, DialUnixNamesThePathWhenItFails) {
  try {
    dial_unix("/nonexistent/ttrpc.sock");
    ADD_FAILURE() << "dial succeeded";
  } catch (const common::SystemError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/ttrpc.sock"), std::string::npos);
    EXPECT_EQ(e.error_code(), ENOENT);
  }
}

}  // namespace
}  // namespace ember::ttrpc
