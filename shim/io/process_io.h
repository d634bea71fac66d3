// One process's stdio on the host (reference §4): the client's FIFOs (or a
// log file, or a logger binary) on one side, the agent's per-stream
// connections (proto/agent/agent.proto "Stdio") on the other, one copy
// thread per stream.
//
// * Output FIFOs are opened O_RDWR: that never blocks, and a reader that goes
//   away never turns into EPIPE for us; a late reader still gets the data.
// * stdin is opened O_RDONLY|O_NONBLOCK and copied until the client closes
//   its end (or CloseIO asks for it), then the agent connection is
//   half-closed, which closes the process's stdin (^D with a terminal).
// * After the process exits, finish_output() waits until the agent closed
//   the output streams (it does so once the output is drained) and every
//   byte was written, then closes our writers: CRI's ExecSync and `ctr` wait
//   for that EOF.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "guest-agent/agent/stream_preamble.h"
#include "shim/io/io_uri.h"
#include "shim/log/shim_log.h"
#include "vmm/common/child_process.h"
#include "vmm/common/event_fd.h"
#include "vmm/common/unique_fd.h"

namespace ember::shim {

struct StdioConfig {
  std::string stdin_path;
  std::string stdout_path;
  std::string stderr_path;
  bool terminal = false;
};

struct IoContext {
  std::string container_id;
  std::string ns;
};

class ProcessIo {
 public:
  using StreamOpener = std::function<common::UniqueFd(agent::StreamKind kind)>;

  // Opens the host side: FIFOs, the log file, or starts the logger binary and
  // waits until it is ready. Throws common::Error naming the path and reason.
  ProcessIo(const StdioConfig& config, const IoContext& context, ShimLog& log);
  ~ProcessIo();  // abort(), then stops the logger (SIGTERM, SIGKILL after 12 s)
  ProcessIo(const ProcessIo&) = delete;
  ProcessIo& operator=(const ProcessIo&) = delete;

  // Which agent streams this process needs (terminal: stdout carries all output).
  bool has_stdin() const { return stdin_src_.valid(); }
  bool has_stdout() const { return stdout_sink_ >= 0; }
  bool has_stderr() const { return stderr_sink_ >= 0; }
  bool terminal() const { return terminal_; }

  // Opens the needed agent streams through `open` and starts copying. Throws
  // what `open` throws (nothing keeps running then).
  void attach(const StreamOpener& open);

  // CloseIO(stdin): deliver what the client wrote so far, then EOF.
  void close_stdin();

  // Waits for EOF on every output stream and for the bytes to be written,
  // then closes the host writers. Returns false when `timeout` expired first
  // (the rest is dropped and the writers are closed anyway). Idempotent.
  bool finish_output(std::chrono::milliseconds timeout);

  // Stops every copy now and closes everything (VM gone, delete). Idempotent.
  void abort();

  // Bytes copied so far (tests, logs).
  uint64_t stdout_bytes() const { return stdout_bytes_.load(); }
  uint64_t stderr_bytes() const { return stderr_bytes_.load(); }

 private:
  void open_output(const std::string& uri, const char* name, common::UniqueFd& own, int& sink);
  void start_logger(const IoTarget& target);
  void copy_out(int sock, int sink, std::atomic<uint64_t>& counter, const char* name);
  void copy_in(int sock, int src);
  bool write_all(int fd, const char* data, size_t size);
  void stop_logger();
  void join_threads();

  IoContext context_;
  ShimLog& log_;
  bool terminal_ = false;

  common::UniqueFd stdin_src_;
  common::UniqueFd stdout_own_, stderr_own_;  // fds we opened (may be shared via sink ints)
  int stdout_sink_ = -1;
  int stderr_sink_ = -1;

  // binary:// logger
  common::ChildProcess logger_;
  common::UniqueFd logger_stdout_, logger_stderr_;

  // agent side
  common::UniqueFd stdin_sock_, stdout_sock_, stderr_sock_;

  common::EventFd abort_event_;
  common::EventFd close_stdin_event_;
  std::atomic<bool> aborted_{false};
  std::atomic<uint64_t> stdout_bytes_{0}, stderr_bytes_{0};

  std::mutex mutex_;
  std::condition_variable changed_;
  int outputs_running_ = 0;
  bool outputs_finished_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace ember::shim
