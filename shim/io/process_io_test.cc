#include "shim/io/process_io.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "shim/testing/read_until_eof.h"

namespace ember::shim {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/shim-io-test.XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
  fs::path path;
};

// The agent's side of the stream connections: one socketpair per stream.
struct FakeStreams {
  std::map<agent::StreamKind, common::UniqueFd> agent_side;
  ProcessIo::StreamOpener opener() {
    return [this](agent::StreamKind kind) {
      int fds[2];
      EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
      agent_side[kind] = common::UniqueFd(fds[1]);
      return common::UniqueFd(fds[0]);
    };
  }
  int fd(agent::StreamKind kind) { return agent_side.at(kind).get(); }
};

std::string read_until_eof(int fd) { return testing::read_until_eof(fd, 5000); }

void write_all(int fd, const std::string& s) { ASSERT_EQ(::write(fd, s.data(), s.size()), static_cast<ssize_t>(s.size())); }

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream b;
  b << in.rdbuf();
  return b.str();
}

TEST(ProcessIo, OutputReachesTheFifoAndEndsWithEof) {
  TempDir dir;
  std::string out = dir.path / "stdout", err = dir.path / "stderr";
  ASSERT_EQ(::mkfifo(out.c_str(), 0600), 0);
  ASSERT_EQ(::mkfifo(err.c_str(), 0600), 0);
  common::UniqueFd out_reader(::open(out.c_str(), O_RDONLY | O_NONBLOCK));
  common::UniqueFd err_reader(::open(err.c_str(), O_RDONLY | O_NONBLOCK));
  ShimLog log;
  ProcessIo io({"", out, err, false}, {"c1", "default"}, log);
  EXPECT_FALSE(io.has_stdin());
  EXPECT_TRUE(io.has_stdout());
  EXPECT_TRUE(io.has_stderr());
  FakeStreams streams;
  io.attach(streams.opener());
  write_all(streams.fd(agent::StreamKind::kStdout), "hello\n");
  write_all(streams.fd(agent::StreamKind::kStderr), "oops\n");
  // The agent closes the streams once the process's output is drained.
  streams.agent_side.clear();
  EXPECT_TRUE(io.finish_output(std::chrono::seconds(5)));
  EXPECT_EQ(read_until_eof(out_reader.get()), "hello\n");
  EXPECT_EQ(read_until_eof(err_reader.get()), "oops\n");
  EXPECT_EQ(io.stdout_bytes(), 6u);
}

TEST(ProcessIo, AVanishedReaderNeverBreaksTheCopy) {
  TempDir dir;
  std::string out = dir.path / "stdout";
  ASSERT_EQ(::mkfifo(out.c_str(), 0600), 0);
  ShimLog log;
  ProcessIo io({"", out, "", false}, {"c1", "default"}, log);
  FakeStreams streams;
  io.attach(streams.opener());
  {
    common::UniqueFd reader(::open(out.c_str(), O_RDONLY | O_NONBLOCK));
  }  // the client went away
  write_all(streams.fd(agent::StreamKind::kStdout), "nobody listens\n");
  streams.agent_side.clear();
  EXPECT_TRUE(io.finish_output(std::chrono::seconds(5)));
  EXPECT_EQ(io.stdout_bytes(), 15u);
}

TEST(ProcessIo, StdinIsCopiedUntilTheClientClosesIt) {
  TempDir dir;
  std::string in = dir.path / "stdin";
  ASSERT_EQ(::mkfifo(in.c_str(), 0600), 0);
  ShimLog log;
  ProcessIo io({in, "", "", false}, {"c1", "default"}, log);
  ASSERT_TRUE(io.has_stdin());
  FakeStreams streams;
  io.attach(streams.opener());
  {
    common::UniqueFd writer(::open(in.c_str(), O_WRONLY));
    write_all(writer.get(), "typed input");
  }
  EXPECT_EQ(read_until_eof(streams.fd(agent::StreamKind::kStdin)), "typed input");
}

TEST(ProcessIo, CloseIoDeliversPendingBytesThenEof) {
  TempDir dir;
  std::string in = dir.path / "stdin";
  ASSERT_EQ(::mkfifo(in.c_str(), 0600), 0);
  ShimLog log;
  ProcessIo io({in, "", "", false}, {"c1", "default"}, log);
  FakeStreams streams;
  io.attach(streams.opener());
  common::UniqueFd writer(::open(in.c_str(), O_WRONLY));
  write_all(writer.get(), "last words");
  // The client keeps its end open but asks for EOF (CloseIO).
  io.close_stdin();
  EXPECT_EQ(read_until_eof(streams.fd(agent::StreamKind::kStdin)), "last words");
}

TEST(ProcessIo, FileUriAppendsStdoutAndStderrToOneFile) {
  TempDir dir;
  fs::path log_file = dir.path / "logs" / "ctr.log";
  std::string uri = "file://" + log_file.string();
  ShimLog log;
  ProcessIo io({"", uri, uri, false}, {"c1", "default"}, log);
  FakeStreams streams;
  io.attach(streams.opener());
  write_all(streams.fd(agent::StreamKind::kStdout), "out\n");
  streams.agent_side.erase(agent::StreamKind::kStdout);
  // Let stdout land first so the file content is deterministic.
  for (int i = 0; i < 100 && io.stdout_bytes() < 4; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  write_all(streams.fd(agent::StreamKind::kStderr), "err\n");
  streams.agent_side.clear();
  EXPECT_TRUE(io.finish_output(std::chrono::seconds(5)));
  EXPECT_EQ(slurp(log_file), "out\nerr\n");
  struct stat st {};
  ASSERT_EQ(::stat(log_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
}

TEST(ProcessIo, BinaryUriRunsTheLoggerWithItsFdsAndEnvironment) {
  TempDir dir;
  fs::path logger = dir.path / "logger.sh";
  fs::path captured = dir.path / "captured";
  {
    std::ofstream s(logger);
    // Ready on fd 5, then copy fd 3 (stdout) and fd 4 (stderr) to files.
    s << "#!/bin/sh\n"
         "echo \"$CONTAINER_ID $CONTAINER_NAMESPACE $# $1 $2 $3\" > \"" << captured.string() << ".env\"\n"
         "printf x >&5\n"
         "exec 5>&-\n"
         "cat <&4 > \"" << captured.string() << ".err\" &\n"
         "cat <&3 > \"" << captured.string() << ".out\"\n"
         "wait\n";
  }
  ::chmod(logger.c_str(), 0755);
  std::string uri = "binary://" + logger.string() + "?mode=test&flag";
  ShimLog log;
  {
    ProcessIo io({"", uri, uri, false}, {"web", "k8s.io"}, log);
    FakeStreams streams;
    io.attach(streams.opener());
    write_all(streams.fd(agent::StreamKind::kStdout), "to logger\n");
    write_all(streams.fd(agent::StreamKind::kStderr), "err to logger\n");
    streams.agent_side.clear();
    EXPECT_TRUE(io.finish_output(std::chrono::seconds(5)));
  }  // the logger saw EOF and exited; the destructor reaped it
  EXPECT_EQ(slurp(captured.string() + ".out"), "to logger\n");
  EXPECT_EQ(slurp(captured.string() + ".err"), "err to logger\n");
  EXPECT_EQ(slurp(captured.string() + ".env"), "web k8s.io 3 mode test flag\n");
}

TEST(ProcessIo, TerminalMergesOutputIntoStdout) {
  TempDir dir;
  std::string out = dir.path / "stdout", err = dir.path / "stderr";
  ASSERT_EQ(::mkfifo(out.c_str(), 0600), 0);
  ASSERT_EQ(::mkfifo(err.c_str(), 0600), 0);
  ShimLog log;
  ProcessIo io({"", out, err, true}, {"c1", "default"}, log);
  EXPECT_TRUE(io.has_stdout());
  EXPECT_FALSE(io.has_stderr());
}

TEST(ProcessIo, MissingFifoIsAnErrorNamingThePath) {
  ShimLog log;
  try {
    ProcessIo io({"", "/nonexistent/dir/stdout", "", false}, {"c1", "default"}, log);
    FAIL() << "no error";
  } catch (const common::Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/stdout"), std::string::npos) << e.what();
  }
}

TEST(ProcessIo, AbortStopsACopyBlockedOnAFullFifo) {
  TempDir dir;
  std::string out = dir.path / "stdout";
  ASSERT_EQ(::mkfifo(out.c_str(), 0600), 0);
  ShimLog log;
  ProcessIo io({"", out, "", false}, {"c1", "default"}, log);
  FakeStreams streams;
  io.attach(streams.opener());
  // Nobody reads the FIFO: 1 MiB cannot fit in its 64 KiB buffer.
  std::thread writer([&] {
    std::string chunk(64 * 1024, 'x');
    for (int i = 0; i < 16; ++i) {
      if (::send(streams.fd(agent::StreamKind::kStdout), chunk.data(), chunk.size(), MSG_NOSIGNAL) < 0) break;
    }
  });
  EXPECT_FALSE(io.finish_output(std::chrono::milliseconds(300)));
  io.abort();
  ::shutdown(streams.fd(agent::StreamKind::kStdout), SHUT_RDWR);
  writer.join();
}

}  // namespace
}  // namespace ember::shim
