#include "shim/io/process_io.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "vmm/common/error.h"

namespace ember::shim {

namespace {

void set_nonblocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

// Waits until `fd` has `events` or `abort_fd` fires; false on abort.
bool wait_fd(int fd, short events, int abort_fd, int extra_fd = -1, bool* extra_fired = nullptr) {
  while (true) {
    pollfd fds[3] = {{fd, events, 0}, {abort_fd, POLLIN, 0}, {extra_fd, POLLIN, 0}};
    int n = ::poll(fds, extra_fd >= 0 ? 3 : 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (fds[1].revents) return false;
    if (extra_fd >= 0 && fds[2].revents && extra_fired) *extra_fired = true;
    if (fds[0].revents || (extra_fired && *extra_fired)) return true;
  }
}

}  // namespace

ProcessIo::ProcessIo(const StdioConfig& config, const IoContext& context, ShimLog& log)
    : context_(context), log_(log), terminal_(config.terminal) {
  if (!config.stdin_path.empty()) {
    IoTarget in = parse_io_uri(config.stdin_path);
    if (in.kind != IoTarget::Kind::kFifo) {
      throw common::Error("stdin \"" + config.stdin_path + "\": only a FIFO path is supported for stdin");
    }
    stdin_src_.reset(::open(in.path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    if (!stdin_src_) common::throw_errno("open stdin " + in.path);
  }
  IoTarget out = parse_io_uri(config.stdout_path);
  if (out.kind == IoTarget::Kind::kBinary) {
    start_logger(out);
  } else {
    open_output(config.stdout_path, "stdout", stdout_own_, stdout_sink_);
    // A terminal merges stderr into stdout; the stderr path (CRI passes one) is ignored.
    if (!terminal_) {
      IoTarget err = parse_io_uri(config.stderr_path);
      if (out.kind == IoTarget::Kind::kFile && (err.kind == IoTarget::Kind::kNone || err.path == out.path)) {
        // file://: stdout and stderr are appended to the same file.
        stderr_sink_ = stdout_sink_;
      } else {
        open_output(config.stderr_path, "stderr", stderr_own_, stderr_sink_);
      }
    }
  }
}

ProcessIo::~ProcessIo() {
  abort();
  stop_logger();
}

void ProcessIo::open_output(const std::string& uri, const char* name, common::UniqueFd& own, int& sink) {
  IoTarget target = parse_io_uri(uri);
  switch (target.kind) {
    case IoTarget::Kind::kNone:
      return;
    case IoTarget::Kind::kBinary:
      throw common::Error(std::string(name) + " \"" + uri + "\": binary:// must be the stdout URI");
    case IoTarget::Kind::kFile: {
      std::error_code ec;
      std::filesystem::create_directories(std::filesystem::path(target.path).parent_path(), ec);
      own.reset(::open(target.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
      if (!own) common::throw_errno(std::string("open ") + name + " log file " + target.path);
      break;
    }
    case IoTarget::Kind::kFifo: {
      struct stat st {};
      if (::stat(target.path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
        own.reset(::open(target.path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC));
      } else {
        // O_RDWR on a FIFO: never blocks waiting for a reader, never EPIPE.
        own.reset(::open(target.path.c_str(), O_RDWR | O_CLOEXEC));
      }
      if (!own) common::throw_errno(std::string("open ") + name + " " + target.path);
      break;
    }
  }
  set_nonblocking(own.get());
  sink = own.get();
}

void ProcessIo::start_logger(const IoTarget& target) {
  auto make_pipe = [&](common::UniqueFd& r, common::UniqueFd& w) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) < 0) common::throw_errno("logger " + target.path + ": pipe");
    r.reset(fds[0]);
    w.reset(fds[1]);
  };
  common::UniqueFd out_r, err_r, ready_r, ready_w;
  make_pipe(out_r, logger_stdout_);
  make_pipe(err_r, logger_stderr_);
  make_pipe(ready_r, ready_w);

  common::SpawnOptions options;
  options.argv.push_back(target.path);
  options.argv.insert(options.argv.end(), target.args.begin(), target.args.end());
  options.env = std::vector<std::string>{"CONTAINER_ID=" + context_.container_id,
                                         "CONTAINER_NAMESPACE=" + context_.ns};
  options.extra_fds = {{3, out_r.get()}, {4, err_r.get()}, {5, ready_w.get()}};
  logger_ = common::ChildProcess::spawn(options);
  out_r.reset();
  err_r.reset();
  ready_w.reset();
  // The logger signals readiness by writing to (or closing) fd 5.
  pollfd pfd{ready_r.get(), POLLIN, 0};
  int n;
  do {
    n = ::poll(&pfd, 1, 60000);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) {
    logger_.kill(SIGKILL);
    logger_.wait();
    throw common::Error("logger " + target.path + " did not signal readiness on fd 5 within 60 s");
  }
  char byte;
  (void)!::read(ready_r.get(), &byte, 1);
  set_nonblocking(logger_stdout_.get());
  set_nonblocking(logger_stderr_.get());
  stdout_sink_ = logger_stdout_.get();
  stderr_sink_ = terminal_ ? -1 : logger_stderr_.get();
  log_.debug("logger started", {{"id", context_.container_id}, {"binary", target.path}, {"pid", logger_.pid()}});
}

void ProcessIo::attach(const StreamOpener& open) {
  if (has_stdin()) stdin_sock_ = open(agent::StreamKind::kStdin);
  if (has_stdout()) stdout_sock_ = open(agent::StreamKind::kStdout);
  if (has_stderr()) stderr_sock_ = open(agent::StreamKind::kStderr);
  std::lock_guard lock(mutex_);
  if (stdout_sock_) {
    ++outputs_running_;
    threads_.emplace_back([this] { copy_out(stdout_sock_.get(), stdout_sink_, stdout_bytes_, "stdout"); });
  }
  if (stderr_sock_) {
    ++outputs_running_;
    threads_.emplace_back([this] { copy_out(stderr_sock_.get(), stderr_sink_, stderr_bytes_, "stderr"); });
  }
  if (stdin_sock_) threads_.emplace_back([this] { copy_in(stdin_sock_.get(), stdin_src_.get()); });
}

bool ProcessIo::write_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n > 0) {
      data += n;
      size -= static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      if (!wait_fd(fd, POLLOUT, abort_event_.fd())) return false;
      continue;
    }
    return false;
  }
  return true;
}

void ProcessIo::copy_out(int sock, int sink, std::atomic<uint64_t>& counter, const char* name) {
  char buf[32 * 1024];
  while (!aborted_.load()) {
    if (!wait_fd(sock, POLLIN, abort_event_.fd())) break;
    ssize_t n = ::read(sock, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) break;  // EOF: the agent drained the process's output
    if (!write_all(sink, buf, static_cast<size_t>(n))) {
      log_.warn("stdio copy stopped", {{"id", context_.container_id}, {"stream", name}});
      break;
    }
    counter.fetch_add(static_cast<uint64_t>(n));
  }
  std::lock_guard lock(mutex_);
  --outputs_running_;
  changed_.notify_all();
}

void ProcessIo::copy_in(int sock, int src) {
  char buf[32 * 1024];
  bool closing = false;
  while (!aborted_.load()) {
    if (!closing) {
      bool close_requested = false;
      if (!wait_fd(src, POLLIN, abort_event_.fd(), close_stdin_event_.fd(), &close_requested)) return;
      closing = close_requested;
    }
    ssize_t n = ::read(src, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      if (closing) break;  // CloseIO: everything written so far is delivered
      continue;
    }
    if (n <= 0) break;  // the client closed its end
    if (!write_all(sock, buf, static_cast<size_t>(n))) return;
  }
  if (!aborted_.load()) ::shutdown(sock, SHUT_WR);
}

void ProcessIo::close_stdin() {
  if (stdin_sock_) {
    close_stdin_event_.signal();
  }
}

bool ProcessIo::finish_output(std::chrono::milliseconds timeout) {
  bool drained;
  {
    std::unique_lock lock(mutex_);
    if (outputs_finished_) return true;
    drained = changed_.wait_for(lock, timeout, [&] { return outputs_running_ == 0; });
  }
  if (!drained) {
    log_.warn("output not drained in time, closing stdio", {{"id", context_.container_id}});
    abort();
  }
  std::lock_guard lock(mutex_);
  outputs_finished_ = true;
  // EOF for the client: close our writers. stdin stays until the process is deleted.
  if (stderr_sink_ == stdout_sink_) stderr_sink_ = -1;
  stdout_own_.reset();
  stderr_own_.reset();
  logger_stdout_.reset();
  logger_stderr_.reset();
  stdout_sink_ = stderr_sink_ = -1;
  return drained;
}

void ProcessIo::abort() {
  if (!aborted_.exchange(true)) {
    abort_event_.signal();
    for (auto* s : {&stdin_sock_, &stdout_sock_, &stderr_sock_}) {
      if (*s) ::shutdown(s->get(), SHUT_RDWR);
    }
  }
  join_threads();
}

void ProcessIo::join_threads() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mutex_);
    threads.swap(threads_);
  }
  for (auto& t : threads) {
    if (t.joinable() && t.get_id() != std::this_thread::get_id()) t.join();
  }
}

void ProcessIo::stop_logger() {
  logger_stdout_.reset();
  logger_stderr_.reset();
  if (!logger_.running()) return;
  // Loggers normally exit at EOF; otherwise SIGTERM, then SIGKILL after 12 s (runc's shim).
  if (logger_.wait_for(1000)) return;
  logger_.kill(SIGTERM);
  if (logger_.wait_for(12000)) return;
  logger_.kill(SIGKILL);
  logger_.wait();
}

}  // namespace ember::shim
