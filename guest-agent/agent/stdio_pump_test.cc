#include "guest-agent/agent/stdio_pump.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <string>
#include <thread>

namespace ember::agent {
namespace {

using namespace std::chrono_literals;
using common::UniqueFd;

struct Pipe {
  UniqueFd read, write;
  Pipe() {
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    read.reset(fds[0]);
    write.reset(fds[1]);
  }
};

struct SocketPair {
  UniqueFd host, agent;
  SocketPair() {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    host.reset(fds[0]);
    agent.reset(fds[1]);
  }
};

bool run_until(common::EventLoop& loop, const std::function<bool()>& done,
               std::chrono::milliseconds timeout = 5s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    loop.run_once(10);
  }
  return true;
}

// Non-blocking read of everything there is; `eof` set when the peer closed.
std::string drain(int fd, bool& eof) {
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
      continue;
    }
    eof = n == 0;
    return out;
  }
}

OutputPump::Timing fast() {
  OutputPump::Timing t;
  t.drain_after_exit = 50ms;
  t.attach_after_exit = 50ms;
  return t;
}

TEST(OutputPump, DeliversOutputThenEofWhenTheWritersClose) {
  common::EventLoop loop;
  Pipe pipe;
  SocketPair sock;
  bool done = false;
  OutputPump pump(loop, std::move(pipe.read), fast(), [&] { done = true; });
  ASSERT_EQ(::write(pipe.write.get(), "abc", 3), 3);
  pump.attach(std::move(sock.agent));
  std::string got;
  bool eof = false;
  ASSERT_TRUE(run_until(loop, [&] {
    got += drain(sock.host.get(), eof);
    return got == "abc";
  }));
  EXPECT_FALSE(done) << "the writer is still open";
  pipe.write.reset();
  ASSERT_TRUE(run_until(loop, [&] { return done; }));
  // When on_done runs the host can already read the EOF.
  got += drain(sock.host.get(), eof);
  EXPECT_TRUE(eof);
  EXPECT_EQ(got, "abc");
}

TEST(OutputPump, UnattachedStreamIsGivenUpAfterTheExit) {
  common::EventLoop loop;
  Pipe pipe;
  bool done = false;
  OutputPump pump(loop, std::move(pipe.read), fast(), [&] { done = true; });
  ASSERT_EQ(::write(pipe.write.get(), "lost", 4), 4);
  loop.run_once(20);
  EXPECT_FALSE(done) << "no exit yet: the host may still come";
  pump.process_exited();
  ASSERT_TRUE(run_until(loop, [&] { return done; }));
}

TEST(OutputPump, WritersOutlivingTheProcessDoNotHoldTheExitForever) {
  common::EventLoop loop;
  Pipe pipe;
  SocketPair sock;
  bool done = false;
  OutputPump pump(loop, std::move(pipe.read), fast(), [&] { done = true; });
  pump.attach(std::move(sock.agent));
  ASSERT_EQ(::write(pipe.write.get(), "last words", 10), 10);
  pump.process_exited();  // pipe.write stays open: a daemonised grandchild
  ASSERT_TRUE(run_until(loop, [&] { return done; }));
  bool eof = false;
  EXPECT_EQ(drain(sock.host.get(), eof), "last words");
  EXPECT_TRUE(eof);
}

TEST(OutputPump, SlowHostMeansBackPressureNotBuffering) {
  common::EventLoop loop;
  Pipe pipe;
  SocketPair sock;
  bool done = false;
  OutputPump pump(loop, std::move(pipe.read), fast(), [&] { done = true; });
  pump.attach(std::move(sock.agent));
  ASSERT_EQ(::fcntl(pipe.write.get(), F_SETFL, O_NONBLOCK), 0);
  // Fill while the host reads nothing: writes must start failing (EAGAIN)
  // after roughly pipe + socket buffers + one chunk.
  std::string pattern;
  for (int i = 0; i < 4096; ++i) pattern += static_cast<char>('a' + i % 26);
  std::size_t written = 0;
  for (int round = 0; round < 2000; ++round) {
    ssize_t n = ::write(pipe.write.get(), pattern.data(), pattern.size());
    if (n > 0) written += static_cast<std::size_t>(n);
    loop.run_once(0);
  }
  EXPECT_LT(written, 8u * 1024 * 1024) << "the pump kept reading although the host did not";
  EXPECT_GT(written, 0u);
  pipe.write.reset();
  std::string got;
  bool eof = false;
  ASSERT_TRUE(run_until(loop, [&] {
    got += drain(sock.host.get(), eof);
    return eof;
  }));
  ASSERT_EQ(got.size(), written);
  for (std::size_t i = 0; i < got.size(); i += 4096) {
    ASSERT_EQ(got.compare(i, std::min<std::size_t>(4096, got.size() - i), pattern, 0,
                          std::min<std::size_t>(4096, got.size() - i)),
              0)
        << "corrupted at " << i;
  }
  EXPECT_TRUE(done);
}

TEST(OutputPump, HostGoneMeansOutputIsDiscardedNotBlocking) {
  common::EventLoop loop;
  Pipe pipe;
  SocketPair sock;
  bool done = false;
  OutputPump pump(loop, std::move(pipe.read), fast(), [&] { done = true; });
  pump.attach(std::move(sock.agent));
  sock.host.reset();
  std::string big(256 * 1024, 'x');
  std::thread writer([&] {
    // Blocking writes: they finish only if the pump keeps draining.
    std::size_t off = 0;
    while (off < big.size()) {
      ssize_t n = ::write(pipe.write.get(), big.data() + off, big.size() - off);
      if (n <= 0) break;
      off += static_cast<std::size_t>(n);
    }
    pipe.write.reset();
  });
  bool ok = run_until(loop, [&] { return done; });
  writer.join();
  EXPECT_TRUE(ok);
}

TEST(InputPump, HalfCloseClosesTheProcessStdin) {
  common::EventLoop loop;
  Pipe pipe;
  SocketPair sock;
  InputPump pump(loop, std::move(pipe.write), false);
  pump.attach(std::move(sock.agent));
  ASSERT_EQ(::send(sock.host.get(), "hello", 5, 0), 5);
  ::shutdown(sock.host.get(), SHUT_WR);
  ASSERT_TRUE(run_until(loop, [&] { return pump.closed(); }));
  char buf[16] = {};
  EXPECT_EQ(::read(pipe.read.get(), buf, sizeof buf), 5);
  EXPECT_EQ(std::string(buf), "hello");
  EXPECT_EQ(::read(pipe.read.get(), buf, sizeof buf), 0) << "EOF after the data";
}

TEST(InputPump, TerminalGetsItsEofCharacter) {
  common::EventLoop loop;
  UniqueFd master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
  ASSERT_TRUE(master);
  ASSERT_EQ(::grantpt(master.get()), 0);
  ASSERT_EQ(::unlockpt(master.get()), 0);
  UniqueFd slave(::open(::ptsname(master.get()), O_RDWR | O_NOCTTY | O_CLOEXEC));
  ASSERT_TRUE(slave);
  termios tio{};
  ASSERT_EQ(::tcgetattr(slave.get(), &tio), 0);
  tio.c_lflag &= ~static_cast<tcflag_t>(ECHO);  // keep the master side quiet
  ASSERT_EQ(::tcsetattr(slave.get(), TCSANOW, &tio), 0);
  SocketPair sock;
  InputPump pump(loop, UniqueFd(::dup(master.get())), true);
  pump.attach(std::move(sock.agent));
  ASSERT_EQ(::send(sock.host.get(), "line\n", 5, 0), 5);
  ::shutdown(sock.host.get(), SHUT_WR);
  ASSERT_TRUE(run_until(loop, [&] { return pump.closed(); }));
  char buf[16] = {};
  EXPECT_EQ(::read(slave.get(), buf, sizeof buf), 5);
  EXPECT_EQ(std::string(buf), "line\n");
  EXPECT_EQ(::read(slave.get(), buf, sizeof buf), 0) << "^D on an empty line reads as EOF";
}

}  // namespace
}  // namespace ember::agent
