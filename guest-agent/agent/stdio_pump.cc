#include "guest-agent/agent/stdio_pump.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>

#include "vmm/common/error.h"

namespace ember::agent {
namespace {

constexpr std::size_t kChunk = 32 * 1024;
// Upper bound of what a drain at the deadline may buffer: a pipe holds at
// most its capacity (64 KiB by default, 1 MiB max unprivileged), so this is
// only a guard.
constexpr std::size_t kMaxDrain = 4 * 1024 * 1024;

// Writes to a socket without SIGPIPE, falling back to write() for pipes.
ssize_t write_some(int fd, const char* data, std::size_t len) {
  ssize_t n = ::send(fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n < 0 && errno == ENOTSOCK) n = ::write(fd, data, len);
  return n;
}

enum class WriteStatus { kAllWritten, kWouldBlock, kBroken };

// Writes buf[pos..] to the sink, advancing `pos`, until all of it is written,
// the sink is full, or it fails (the peer went away).
WriteStatus write_pending(int fd, const std::string& buf, std::size_t& pos) {
  while (pos < buf.size()) {
    ssize_t n = write_some(fd, buf.data() + pos, buf.size() - pos);
    if (n > 0) {
      pos += static_cast<std::size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && errno == EAGAIN) {
      return WriteStatus::kWouldBlock;
    } else {
      return WriteStatus::kBroken;
    }
  }
  return WriteStatus::kAllWritten;
}

// The pumps' flow control: read from the source only when the previous chunk
// was fully written, and watch the sink only while bytes are waiting for it.
void watch_for_flow(FdWatch* source_watch, FdWatch* sink_watch, bool want_input, bool pending) {
  if (source_watch) source_watch->set(want_input && !pending ? uint32_t{EPOLLIN} : 0u);
  if (sink_watch) sink_watch->set(pending ? uint32_t{EPOLLOUT} : 0u);
}

}  // namespace

void set_nonblocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    common::throw_errno("make fd " + std::to_string(fd) + " non-blocking");
  }
}

void FdWatch::set(uint32_t events) {
  if (events == events_) return;
  if (events == 0) {
    loop_.remove(fd_);
  } else if (events_ == 0) {
    loop_.add(fd_, events, handler_);
  } else {
    loop_.modify(fd_, events);
  }
  events_ = events;
}

// --- OutputPump -------------------------------------------------------------

OutputPump::OutputPump(common::EventLoop& loop, common::UniqueFd source, Timing timing,
                       std::function<void()> on_done)
    : loop_(loop),
      source_(std::move(source)),
      timing_(timing),
      on_done_(std::move(on_done)),
      timer_(loop, [this] { on_timer(); }) {
  set_nonblocking(source_.get());
  source_watch_ =
      std::make_unique<FdWatch>(loop_, source_.get(), [this](uint32_t e) { on_source(e); });
}

OutputPump::~OutputPump() { abort(); }

void OutputPump::attach(common::UniqueFd sink) {
  if (attached_) throw common::Error("stream is already attached");
  if (done_) throw common::Error("stream was already closed");
  set_nonblocking(sink.get());
  sink_ = std::move(sink);
  sink_watch_ = std::make_unique<FdWatch>(loop_, sink_.get(), [this](uint32_t e) { on_sink(e); });
  attached_ = true;
  if (exited_) timer_.arm(timing_.drain_after_exit);
  update_watches();
}

void OutputPump::process_exited() {
  if (exited_ || done_) return;
  exited_ = true;
  timer_.arm(attached_ ? timing_.drain_after_exit : timing_.attach_after_exit);
}

void OutputPump::abort() {
  timer_.cancel();
  source_watch_.reset();
  sink_watch_.reset();
  source_.reset();
  sink_.reset();
  done_ = true;
}

void OutputPump::on_timer() {
  if (done_) return;
  if (!attached_) {
    // Nobody came for this output; stop holding the exit back.
    source_eof_ = true;
    source_.reset();
    finish();
    return;
  }
  // Writers outlived the process: send what the pipe holds now, then EOF.
  if (!source_eof_) {
    read_source(true);
    source_eof_ = true;
    source_watch_.reset();
    source_.reset();
  }
  flush();
}

void OutputPump::read_source(bool all) {
  do {
    if (buf_pos_ == buf_.size()) {
      buf_.clear();
      buf_pos_ = 0;
    }
    if (buf_.size() >= kMaxDrain) return;
    std::size_t old = buf_.size();
    buf_.resize(old + kChunk);
    ssize_t n = ::read(source_.get(), buf_.data() + old, kChunk);
    buf_.resize(old + static_cast<std::size_t>(std::max<ssize_t>(n, 0)));
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    // 0 = EOF; EIO on a pty master = every slave fd closed.
    source_eof_ = true;
    return;
  } while (all);
}

void OutputPump::on_source(uint32_t) {
  if (done_ || !attached_) return;
  read_source(false);
  if (sink_broken_) {
    buf_.clear();
    buf_pos_ = 0;
  }
  flush();
}

void OutputPump::on_sink(uint32_t) {
  if (done_) return;
  flush();
}

void OutputPump::flush() {
  if (!sink_broken_ && write_pending(sink_.get(), buf_, buf_pos_) == WriteStatus::kBroken) {
    // The host went away: keep draining the process so it never blocks.
    sink_broken_ = true;
  }
  if (sink_broken_ || buf_pos_ == buf_.size()) {
    buf_.clear();
    buf_pos_ = 0;
  }
  if (source_eof_ && buf_.empty()) {
    finish();
    return;
  }
  update_watches();
}

void OutputPump::update_watches() {
  if (done_) return;
  watch_for_flow(source_watch_.get(), sink_watch_.get(), attached_ && !source_eof_,
                 buf_pos_ < buf_.size());
}

void OutputPump::finish() {
  if (done_) return;
  if (sink_) ::shutdown(sink_.get(), SHUT_WR);
  abort();
  if (on_done_) on_done_();  // may destroy this pump: nothing after this line
}

// --- InputPump --------------------------------------------------------------

InputPump::InputPump(common::EventLoop& loop, common::UniqueFd sink, bool is_pty)
    : loop_(loop), sink_(std::move(sink)), is_pty_(is_pty) {
  set_nonblocking(sink_.get());
  sink_watch_ = std::make_unique<FdWatch>(loop_, sink_.get(), [this](uint32_t e) { on_sink(e); });
}

InputPump::~InputPump() { close(); }

void InputPump::attach(common::UniqueFd source) {
  if (attached_) throw common::Error("stream is already attached");
  if (closed_) throw common::Error("stdin was already closed");
  set_nonblocking(source.get());
  source_ = std::move(source);
  source_watch_ =
      std::make_unique<FdWatch>(loop_, source_.get(), [this](uint32_t e) { on_source(e); });
  attached_ = true;
  update_watches();
}

void InputPump::close() {
  source_watch_.reset();
  sink_watch_.reset();
  source_.reset();
  sink_.reset();
  buf_.clear();
  buf_pos_ = 0;
  closed_ = true;
}

void InputPump::on_source(uint32_t) {
  if (closed_) return;
  buf_.resize(kChunk);
  buf_pos_ = 0;
  ssize_t n = ::read(source_.get(), buf_.data(), kChunk);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
    buf_.clear();
    return;
  }
  buf_.resize(static_cast<std::size_t>(std::max<ssize_t>(n, 0)));
  if (n <= 0) source_eof_ = true;  // EOF (half-close) or a reset
  flush();
}

void InputPump::on_sink(uint32_t) {
  if (closed_) return;
  flush();
}

void InputPump::flush() {
  switch (write_pending(sink_.get(), buf_, buf_pos_)) {
    case WriteStatus::kAllWritten:
      break;
    case WriteStatus::kWouldBlock:
      update_watches();
      return;
    case WriteStatus::kBroken:
      close();  // the process closed its stdin or exited
      return;
  }
  buf_.clear();
  buf_pos_ = 0;
  if (source_eof_) {
    end_of_input();
    return;
  }
  update_watches();
}

void InputPump::end_of_input() {
  if (is_pty_ && sink_) {
    // A pty has no half-close: send the line discipline's EOF character, which
    // ends a read() in canonical mode just like EOF on a pipe.
    termios tio{};
    char eof = ::tcgetattr(sink_.get(), &tio) == 0 ? static_cast<char>(tio.c_cc[VEOF]) : '\x04';
    (void)!::write(sink_.get(), &eof, 1);
  }
  close();
}

void InputPump::update_watches() {
  if (closed_) return;
  watch_for_flow(source_watch_.get(), sink_watch_.get(), attached_ && !source_eof_,
                 buf_pos_ < buf_.size());
}

}  // namespace ember::agent
