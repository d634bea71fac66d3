// Server behaviour on the wire, driven through a raw socket so every byte
// sent and received is visible (reference §2).
#include "proto/ttrpc/server.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <thread>

#include "proto/ttrpc/client.h"
#include "proto/ttrpc/socket.h"
#include "proto/ttrpc/test_peer.h"

namespace ember::ttrpc {
namespace {

using namespace std::chrono_literals;
using testing::hex;
using testing::make_request;
using testing::RawPeer;
using testing::socket_pair;
using testing::unhex;

// A one-shot flag threads can wait on.
class Gate {
 public:
  void open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  bool wait(std::chrono::milliseconds timeout = 5s) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [this] { return open_; });
  }
  bool is_open() {
    std::lock_guard lock(mu_);
    return open_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

// Blocks until `ctx` is cancelled (or 10 s pass); true if it was cancelled.
bool wait_cancelled(Context& ctx) {
  Gate cancelled;
  ctx.on_cancel([&] { cancelled.open(); });
  return cancelled.wait(10s);
}

bool eventually(const std::function<bool()>& cond, std::chrono::milliseconds timeout = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return cond();
}

TEST(Context, CallbacksRunOnceOnCancelAndAtOnceWhenAlreadyCancelled) {
  Context ctx("svc", "M");
  int runs = 0;
  ctx.on_cancel([&] { ++runs; });
  EXPECT_FALSE(ctx.cancelled());
  ctx.cancel();
  ctx.cancel();
  EXPECT_TRUE(ctx.cancelled());
  EXPECT_EQ(runs, 1);
  ctx.on_cancel([&] { runs += 10; });  // like std::stop_callback: runs right here
  EXPECT_EQ(runs, 11);
}

TEST(Context, CallbacksAreDroppedOnceTheHandlerFinished) {
  Context ctx;
  bool ran = false;
  ctx.on_cancel([&] { ran = true; });
  ctx.finish();
  ctx.cancel();
  ctx.on_cancel([&] { ran = true; });
  EXPECT_FALSE(ran);
}

TEST(Context, DocumentedWaitPatternWakesUpWhicheverSideComesFirst) {
  // Register, then take your mutex and wait with a predicate that checks
  // cancelled(): the callback takes that same mutex, and cancellation may
  // come before or after registration.
  for (int round = 0; round < 200; ++round) {
    Context ctx;
    std::mutex mu;
    std::condition_variable cv;
    std::thread handler([&] {
      ctx.on_cancel([&] {
        std::lock_guard l(mu);
        cv.notify_all();
      });
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return ctx.cancelled(); });
      lock.unlock();
      ctx.finish();
    });
    if (round % 2) std::this_thread::yield();
    ctx.cancel();
    handler.join();
  }
}

TEST(Context, FinishWaitsForARunningCallback) {
  Context ctx;
  std::atomic<bool> callback_done{false};
  ctx.on_cancel([&] {
    std::this_thread::sleep_for(50ms);
    callback_done = true;
  });
  std::thread canceller([&] { ctx.cancel(); });
  while (!ctx.cancelled()) std::this_thread::yield();
  ctx.finish();
  EXPECT_TRUE(callback_done.load()) << "finish() returned while the callback still ran";
  canceller.join();
}

class ServerTest : public ::testing::Test {
 protected:
  void start(ServerOptions options = {}) {
    options.log = [this](std::string_view line) {
      std::lock_guard lock(log_mu_);
      log_ += std::string(line) + "\n";
    };
    server_ = std::make_unique<Server>(std::move(options));
    server_->register_method("test.Svc", "Echo", [](Context&, std::string_view payload) {
      return std::string(payload);
    });
  }

  void SetUp() override { start(); }

  RawPeer connect_raw() {
    auto [ours, theirs] = socket_pair();
    server_->serve_connection(std::move(ours));
    return RawPeer(std::move(theirs));
  }

  std::string log() {
    std::lock_guard lock(log_mu_);
    return log_;
  }

  std::unique_ptr<Server> server_;
  std::mutex log_mu_;
  std::string log_;
};

TEST_F(ServerTest, AnswersWithByteExactResponseFrame) {
  std::string seen_payload;
  std::optional<std::string> seen_namespace;
  bool had_deadline = false;
  server_->register_method("containerd.task.v2.Task", "State",
                           [&](Context& ctx, std::string_view payload) {
                             seen_payload = payload;
                             seen_namespace = ctx.metadata().get("containerd-namespace-ttrpc");
                             had_deadline = ctx.deadline().has_value();
                             // StateResponse{id="abc", pid=42, status=RUNNING}
                             return unhex("0a03616263182a2002");
                           });
  RawPeer peer = connect_raw();
  auto request =
      make_request("containerd.task.v2.Task", "State", unhex("0a03616263"), 2'000'000'000);
  auto* kv = request.add_metadata();
  kv->set_key("containerd-namespace-ttrpc");
  kv->set_value("k8s.io");
  peer.send_request(1, request);

  ASSERT_TRUE(peer.read_frame());
  EXPECT_EQ(hex(peer.raw()),
            "0000000d"
            "00000001"
            "0200"
            "0a00"
            "1209"
            "0a03616263182a2002");
  EXPECT_EQ(hex(seen_payload), "0a03616263");
  EXPECT_EQ(seen_namespace, "k8s.io");
  EXPECT_TRUE(had_deadline);
}

TEST_F(ServerTest, UnknownServiceAnswersUnimplementedNamingTheService) {
  RawPeer peer = connect_raw();
  peer.send_request(1, make_request("no.such.Service", "Echo"));
  auto response = peer.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(peer.last_id(), 1u);
  EXPECT_EQ(response->status().code(), static_cast<int>(Code::kUnimplemented));
  EXPECT_EQ(response->status().message(), "service no.such.Service");
}

TEST_F(ServerTest, UnknownMethodAnswersUnimplementedNamingTheMethod) {
  RawPeer peer = connect_raw();
  peer.send_request(3, make_request("test.Svc", "Nope"));
  auto response = peer.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(peer.last_id(), 3u);
  EXPECT_EQ(response->status().code(), static_cast<int>(Code::kUnimplemented));
  EXPECT_EQ(response->status().message(), "method Nope");
}

TEST_F(ServerTest, EvenStreamIdIsRejectedAndConnectionKeepsWorking) {
  RawPeer peer = connect_raw();
  peer.send_request(2, make_request("test.Svc", "Echo", "x"));
  auto rejected = peer.read_response();
  ASSERT_TRUE(rejected);
  EXPECT_EQ(peer.last_id(), 2u);
  EXPECT_EQ(rejected->status().code(), static_cast<int>(Code::kInvalidArgument));

  peer.send_request(1, make_request("test.Svc", "Echo", "y"));
  auto ok = peer.read_response();
  ASSERT_TRUE(ok);
  EXPECT_EQ(peer.last_id(), 1u);
  EXPECT_EQ(ok->status().code(), 0);
  EXPECT_EQ(ok->payload(), "y");
}

TEST_F(ServerTest, OversizeFrameIsDiscardedAnsweredResourceExhaustedAndConnectionKeepsWorking) {
  RawPeer peer = connect_raw();
  const std::uint32_t length = kMaxFrameLength + 100;
  auto header = encode_header(FrameHeader{length, 5, 1, 0});
  std::string frame(reinterpret_cast<const char*>(header.data()), header.size());
  frame += std::string(length, '\x0a');  // bytes that would not even parse
  std::thread sender([&] { peer.send(frame); });
  auto rejected = peer.read_response(10s);
  sender.join();
  ASSERT_TRUE(rejected);
  EXPECT_EQ(peer.last_id(), 5u);
  EXPECT_EQ(rejected->status().code(), static_cast<int>(Code::kResourceExhausted));
  EXPECT_NE(rejected->status().message().find(std::to_string(length)), std::string::npos);

  peer.send_request(7, make_request("test.Svc", "Echo", "still here"));
  auto ok = peer.read_response();
  ASSERT_TRUE(ok);
  EXPECT_EQ(peer.last_id(), 7u);
  EXPECT_EQ(ok->payload(), "still here");
}

TEST_F(ServerTest, RequestFrameOfExactlyFourMiBIsServed) {
  RawPeer peer = connect_raw();
  // Grow the payload until the serialized Request is exactly 4 MiB.
  auto request = make_request("test.Svc", "Echo");
  std::size_t payload_size = kMaxFrameLength - 64;
  for (int i = 0; i < 4; ++i) {
    request.set_payload(std::string(payload_size, 'a'));
    payload_size += kMaxFrameLength - request.ByteSizeLong();
  }
  request.set_payload(std::string(payload_size, 'a'));
  ASSERT_EQ(request.ByteSizeLong(), kMaxFrameLength);
  std::thread sender([&] { peer.send_request(1, request); });
  auto frame = peer.read_frame(10s);
  sender.join();
  ASSERT_TRUE(frame);
  ::ttrpc::Response response;
  ASSERT_TRUE(response.ParseFromString(frame->payload));
  // The echo reply is a little larger than the request payload: still fits.
  EXPECT_EQ(response.status().code(), 0) << response.status().message();
  EXPECT_EQ(response.payload().size(), payload_size);
}

TEST_F(ServerTest, ReplyLargerThanFourMiBBecomesResourceExhausted) {
  server_->register_method("test.Svc", "Big", [](Context&, std::string_view) {
    return std::string(kMaxFrameLength, 'b');
  });
  RawPeer peer = connect_raw();
  peer.send_request(1, make_request("test.Svc", "Big"));
  auto response = peer.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status().code(), static_cast<int>(Code::kResourceExhausted));
  EXPECT_TRUE(response->payload().empty());
}

TEST_F(ServerTest, UnknownFrameTypesAreIgnored) {
  RawPeer peer = connect_raw();
  peer.send(encode_frame(1, FrameType::kData, "data"));
  peer.send(encode_frame(3, static_cast<FrameType>(0x7f), "future"));
  peer.send(encode_frame(5, FrameType::kResponse, "stray response"));
  peer.send_request(7, make_request("test.Svc", "Echo", "after"));
  auto response = peer.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(peer.last_id(), 7u) << "only the request may be answered";
  EXPECT_EQ(response->payload(), "after");
  EXPECT_FALSE(peer.read_frame(100ms));
}

TEST_F(ServerTest, UndecodableRequestAnswersInvalidArgument) {
  RawPeer peer = connect_raw();
  peer.send(encode_frame(9, FrameType::kRequest, "\xff\xff\xff"));
  auto response = peer.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(peer.last_id(), 9u);
  EXPECT_EQ(response->status().code(), static_cast<int>(Code::kInvalidArgument));
}

TEST_F(ServerTest, HandlerExceptionsBecomeStatuses) {
  server_->register_method("test.Svc", "NotFound", [](Context&, std::string_view) -> std::string {
    throw StatusError(Code::kNotFound, "container abc not found");
  });
  server_->register_method("test.Svc", "Broken", [](Context&, std::string_view) -> std::string {
    throw common::Error("open drive \"rootfs\": No such file or directory");
  });
  RawPeer peer = connect_raw();
  peer.send_request(1, make_request("test.Svc", "NotFound"));
  auto not_found = peer.read_response();
  ASSERT_TRUE(not_found);
  EXPECT_EQ(not_found->status().code(), static_cast<int>(Code::kNotFound));
  EXPECT_EQ(not_found->status().message(), "container abc not found");

  peer.send_request(3, make_request("test.Svc", "Broken"));
  auto broken = peer.read_response();
  ASSERT_TRUE(broken);
  EXPECT_EQ(broken->status().code(), static_cast<int>(Code::kUnknown));
  EXPECT_EQ(broken->status().message(), "open drive \"rootfs\": No such file or directory");
}

TEST_F(ServerTest, SlowCallDoesNotBlockFastCallOnSameConnection) {
  Gate release;
  server_->register_method("test.Svc", "Slow", [&](Context&, std::string_view) {
    release.wait(10s);
    return std::string("slow");
  });
  RawPeer peer = connect_raw();
  peer.send_request(1, make_request("test.Svc", "Slow"));
  peer.send_request(3, make_request("test.Svc", "Echo", "fast"));
  auto fast = peer.read_response(3s);
  ASSERT_TRUE(fast) << "the fast call waited for the slow one";
  EXPECT_EQ(peer.last_id(), 3u);
  EXPECT_EQ(fast->payload(), "fast");

  release.open();
  auto slow = peer.read_response();
  ASSERT_TRUE(slow);
  EXPECT_EQ(peer.last_id(), 1u);
  EXPECT_EQ(slow->payload(), "slow");
}

TEST_F(ServerTest, ManyParallelCallsFromManyThreadsAreAllAnsweredCorrectly) {
  std::atomic<int> in_flight{0};
  std::atomic<int> max_in_flight{0};
  server_->register_method("test.Svc", "Work", [&](Context&, std::string_view payload) {
    int now = ++in_flight;
    int prev = max_in_flight.load();
    while (now > prev && !max_in_flight.compare_exchange_weak(prev, now)) {
    }
    std::this_thread::sleep_for(2ms);
    --in_flight;
    return "re:" + std::string(payload);
  });
  auto [ours, theirs] = socket_pair();
  server_->serve_connection(std::move(ours));
  Client client(std::move(theirs));

  constexpr int kThreads = 16;
  constexpr int kCallsPerThread = 40;
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kCallsPerThread; ++i) {
        std::string payload = std::to_string(t) + "/" + std::to_string(i);
        if (client.call("test.Svc", "Work", payload) != "re:" + payload) ++wrong;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(max_in_flight.load(), 1) << "calls were not run concurrently";
}

TEST_F(ServerTest, DeadlineIsAnsweredWhileHandlerStillRunsAndHandlerIsCancelled) {
  Gate handler_saw_cancel;
  server_->register_method("test.Svc", "Hang", [&](Context& ctx, std::string_view) {
    if (wait_cancelled(ctx)) handler_saw_cancel.open();
    return std::string("too late");
  });
  RawPeer peer = connect_raw();
  peer.send_request(1, make_request("test.Svc", "Hang", "", 50'000'000));  // 50 ms
  auto response = peer.read_response(3s);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status().code(), static_cast<int>(Code::kDeadlineExceeded));
  EXPECT_NE(response->status().message().find("test.Svc/Hang"), std::string::npos);
  EXPECT_TRUE(handler_saw_cancel.wait());
  EXPECT_FALSE(peer.read_frame(200ms)) << "the late handler result must be dropped";
}

TEST_F(ServerTest, NegativeTimeoutIsAnsweredDeadlineExceededWithoutRunningHandler) {
  std::atomic<bool> ran{false};
  server_->register_method("test.Svc", "Mark", [&](Context&, std::string_view) {
    ran = true;
    return std::string();
  });
  RawPeer peer = connect_raw();
  peer.send_request(1, make_request("test.Svc", "Mark", "", -5));
  auto response = peer.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status().code(), static_cast<int>(Code::kDeadlineExceeded));
  EXPECT_FALSE(ran.load());
}

TEST_F(ServerTest, DuplicateStreamIdInFlightIsRejected) {
  Gate release;
  server_->register_method("test.Svc", "Slow", [&](Context&, std::string_view) {
    release.wait(10s);
    return std::string("first");
  });
  RawPeer peer = connect_raw();
  peer.send_request(1, make_request("test.Svc", "Slow"));
  peer.send_request(1, make_request("test.Svc", "Echo", "second"));
  auto rejected = peer.read_response();
  ASSERT_TRUE(rejected);
  EXPECT_EQ(rejected->status().code(), static_cast<int>(Code::kInvalidArgument));
  release.open();
  auto first = peer.read_response();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->payload(), "first");
}

TEST_F(ServerTest, PeerDisconnectMidCallCancelsHandlerAndDropsConnection) {
  Gate handler_saw_cancel;
  Gate handler_started;
  server_->register_method("test.Svc", "Hang", [&](Context& ctx, std::string_view) {
    handler_started.open();
    if (wait_cancelled(ctx)) handler_saw_cancel.open();
    return std::string("nobody listens");
  });
  {
    RawPeer peer = connect_raw();
    peer.send_request(1, make_request("test.Svc", "Hang"));
    ASSERT_TRUE(handler_started.wait());
    EXPECT_EQ(server_->connection_count(), 1u);
  }  // peer closes its end
  EXPECT_TRUE(handler_saw_cancel.wait());
  EXPECT_TRUE(eventually([&] { return server_->connection_count() == 0; }));
}

TEST_F(ServerTest, ReplyToPeerThatStoppedReadingGivesEpipeNotSigpipe) {
  // A unix peer that shut down its read side makes our write fail with
  // EPIPE, and raise SIGPIPE unless the server sends with MSG_NOSIGNAL. The
  // default SIGPIPE action would kill this test binary.
  Gate release;
  server_->register_method("test.Svc", "Later", [&](Context&, std::string_view) {
    release.wait(5s);
    return std::string("reply nobody reads");
  });
  RawPeer peer = connect_raw();
  peer.send_request(1, make_request("test.Svc", "Later"));
  ASSERT_TRUE(eventually([&] { return server_->connection_count() == 1; }));
  ::shutdown(peer.fd(), SHUT_RD);
  release.open();
  EXPECT_TRUE(eventually([&] { return server_->connection_count() == 0; }));
  EXPECT_NE(log().find("write: Broken pipe"), std::string::npos) << log();
}

TEST_F(ServerTest, NonSocketFdIsRefused) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  common::UniqueFd write_end(fds[1]);
  server_->serve_connection(common::UniqueFd(fds[0]));
  EXPECT_TRUE(eventually([&] { return log().find("not serve") != std::string::npos; })) << log();
  EXPECT_EQ(server_->connection_count(), 0u);
}

TEST_F(ServerTest, TruncatedFrameThenEofClosesConnection) {
  RawPeer peer = connect_raw();
  std::string frame = encode_frame(1, FrameType::kRequest,
                                   make_request("test.Svc", "Echo", "x").SerializeAsString());
  peer.send(frame.substr(0, 14));  // header + 4 payload bytes
  peer.shutdown_write();
  EXPECT_TRUE(peer.wait_eof());
  EXPECT_TRUE(peer.raw().empty()) << "a truncated request must not be answered";
  EXPECT_TRUE(eventually([&] { return server_->connection_count() == 0; }));
  EXPECT_NE(log().find("middle of a frame"), std::string::npos) << log();
}

TEST_F(ServerTest, ServesSeveralConnectionsAtOnceOverPathsAndFds) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("ttrpc-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "s.sock").string();
  server_->listen_unix(path);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  Client over_path_1(dial_unix(path));
  Client over_path_2(dial_unix("unix://" + path));
  auto [ours, theirs] = socket_pair();
  server_->serve_connection(std::move(ours));
  Client over_fd(std::move(theirs));

  EXPECT_EQ(over_path_1.call("test.Svc", "Echo", "a"), "a");
  EXPECT_EQ(over_path_2.call("test.Svc", "Echo", "b"), "b");
  EXPECT_EQ(over_fd.call("test.Svc", "Echo", "c"), "c");
  EXPECT_EQ(server_->connection_count(), 3u);
  std::filesystem::remove_all(dir);
}

TEST_F(ServerTest, RejectsUnixPeerWithAnotherUid) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to connect as another uid";
  const auto dir =
      std::filesystem::temp_directory_path() / ("ttrpc-uid-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::filesystem::permissions(dir, std::filesystem::perms::all);
  const std::string path = (dir / "s.sock").string();
  server_->listen_unix(path);
  ASSERT_EQ(::chmod(path.c_str(), 0666), 0);  // let the file mode through; creds must stop it

  const std::string frame = encode_frame(1, FrameType::kRequest,
                                         make_request("test.Svc", "Echo", "x").SerializeAsString());
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Only async-signal-safe calls from here on.
    if (::setuid(65534) != 0) ::_exit(10);
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size());
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) ::_exit(11);
    // MSG_NOSIGNAL: the server may already have closed the connection.
    if (::send(fd, frame.data(), frame.size(), MSG_NOSIGNAL) < 0) ::_exit(0);
    char buf[64];
    ssize_t n = ::read(fd, buf, sizeof(buf));
    ::_exit(n > 0 ? 12 : 0);  // any answer means the peer was served
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "10: setuid failed, 11: connect failed, 12: served";
  EXPECT_NE(log().find("rejected connection from uid 65534"), std::string::npos) << log();
  std::filesystem::remove_all(dir);
}

TEST_F(ServerTest, ShutdownLetsCancelledHandlersAnswerWithinGrace) {
  server_.reset();
  start(ServerOptions{.shutdown_grace = 2000ms});
  Gate started;
  server_->register_method("test.Svc", "Wait", [&](Context& ctx, std::string_view) -> std::string {
    started.open();
    wait_cancelled(ctx);
    throw StatusError(Code::kCancelled, "wait interrupted by shutdown");
  });
  RawPeer peer = connect_raw();
  peer.send_request(1, make_request("test.Svc", "Wait"));
  ASSERT_TRUE(started.wait());
  server_->shutdown();
  auto response = peer.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status().code(), static_cast<int>(Code::kCancelled));
  EXPECT_EQ(response->status().message(), "wait interrupted by shutdown");
  EXPECT_TRUE(peer.wait_eof());
}

TEST_F(ServerTest, ShutdownAnswersStuckCallsUnavailableAndClosesConnections) {
  server_.reset();
  start(ServerOptions{.shutdown_grace = 50ms});
  Gate started;
  server_->register_method("test.Svc", "Stuck", [&](Context& ctx, std::string_view) {
    started.open();
    wait_cancelled(ctx);
    std::this_thread::sleep_for(300ms);  // ignores cancellation for a while
    return std::string("late");
  });
  RawPeer peer = connect_raw();
  peer.send_request(1, make_request("test.Svc", "Stuck"));
  ASSERT_TRUE(started.wait());
  server_->shutdown();
  auto response = peer.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status().code(), static_cast<int>(Code::kUnavailable));
  EXPECT_EQ(response->status().message(), "ttrpc: server shutting down");
  EXPECT_TRUE(peer.wait_eof());
  EXPECT_EQ(server_->connection_count(), 0u);
  server_->shutdown();  // idempotent
}

TEST_F(ServerTest, ShutdownFromHandlerThreadIsRefused) {
  std::string error;
  server_->register_method("test.Svc", "Stop", [&](Context&, std::string_view) {
    try {
      server_->shutdown();
    } catch (const std::logic_error& e) {
      error = e.what();
    }
    return std::string();
  });
  RawPeer peer = connect_raw();
  peer.send_request(1, make_request("test.Svc", "Stop"));
  ASSERT_TRUE(peer.read_response());
  EXPECT_NE(error.find("handler"), std::string::npos) << error;
}

TEST_F(ServerTest, DuplicateRegistrationThrows) {
  EXPECT_THROW(server_->register_method("test.Svc", "Echo", {}), common::Error);
}

}  // namespace
}  // namespace ember::ttrpc
