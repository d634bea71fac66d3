// Copies a process's stdio between its pipes (or pty master) and the host's
// stream connections, on the event loop, with the transports' flow control:
// a pump reads from its source only when the previous chunk was fully
// written, so a slow host makes the process block on a full pipe instead of
// the agent buffering without bound.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "guest-agent/agent/loop_timer.h"
#include "vmm/common/event_loop.h"
#include "vmm/common/unique_fd.h"

namespace ember::agent {

// Makes `fd` non-blocking; throws on failure.
void set_nonblocking(int fd);

// Watches one fd on the loop with a changing event mask (0 = not watched).
class FdWatch {
 public:
  FdWatch(common::EventLoop& loop, int fd, common::EventLoop::Handler handler)
      : loop_(loop), fd_(fd), handler_(std::move(handler)) {}
  ~FdWatch() { set(0); }
  FdWatch(const FdWatch&) = delete;
  FdWatch& operator=(const FdWatch&) = delete;
  void set(uint32_t events);

 private:
  common::EventLoop& loop_;
  int fd_;
  common::EventLoop::Handler handler_;
  uint32_t events_ = 0;
};

// Process output (stdout, stderr, or a pty master) -> host connection.
class OutputPump {
 public:
  struct Timing {
    // After the exit, stop waiting for EOF (writers that outlive the
    // process) once this passed; what is in the pipe then is still sent.
    std::chrono::milliseconds drain_after_exit{2000};
    // A stream that was asked for but is still not attached this long after
    // the exit is given up.
    std::chrono::milliseconds attach_after_exit{10000};
  };

  // `on_done` runs once, when the stream is closed (EOF delivered, peer gone,
  // or given up). A read error counts as EOF: on a pty master, EIO is how the
  // kernel says every slave fd was closed.
  OutputPump(common::EventLoop& loop, common::UniqueFd source, Timing timing,
             std::function<void()> on_done);
  ~OutputPump();
  OutputPump(const OutputPump&) = delete;
  OutputPump& operator=(const OutputPump&) = delete;

  // Throws common::Error if a connection is already attached.
  void attach(common::UniqueFd sink);
  bool attached() const { return attached_; }
  // Starts the exit timers.
  void process_exited();
  // Closes everything now without calling on_done (the process is deleted).
  void abort();
  bool done() const { return done_; }

 private:
  void on_source(uint32_t events);
  void on_sink(uint32_t events);
  // Reads once (or until EAGAIN when `all`) into buf_; updates source_eof_.
  void read_source(bool all);
  void flush();
  void update_watches();
  void finish();
  void on_timer();

  common::EventLoop& loop_;
  common::UniqueFd source_;
  common::UniqueFd sink_;
  Timing timing_;
  std::function<void()> on_done_;
  std::unique_ptr<FdWatch> source_watch_;
  std::unique_ptr<FdWatch> sink_watch_;
  LoopTimer timer_;
  std::string buf_;
  std::size_t buf_pos_ = 0;
  bool attached_ = false;
  bool source_eof_ = false;
  bool sink_broken_ = false;
  bool exited_ = false;
  bool done_ = false;
};

// Host connection -> process stdin (a pipe or the pty master).
class InputPump {
 public:
  InputPump(common::EventLoop& loop, common::UniqueFd sink, bool is_pty);
  ~InputPump();
  InputPump(const InputPump&) = delete;
  InputPump& operator=(const InputPump&) = delete;

  void attach(common::UniqueFd source);
  bool attached() const { return attached_; }
  // Closes the process's stdin (and the connection) now.
  void close();
  bool closed() const { return closed_; }

 private:
  void on_source(uint32_t events);
  void on_sink(uint32_t events);
  void flush();
  void update_watches();
  void end_of_input();

  common::EventLoop& loop_;
  common::UniqueFd sink_;
  common::UniqueFd source_;
  bool is_pty_;
  std::unique_ptr<FdWatch> source_watch_;
  std::unique_ptr<FdWatch> sink_watch_;
  std::string buf_;
  std::size_t buf_pos_ = 0;
  bool attached_ = false;
  bool source_eof_ = false;
  bool closed_ = false;
};

}  // namespace ember::agent
