// The per-request context a server handler receives: who was called, the
// caller's metadata and deadline, and whether the call is still wanted.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "proto/ttrpc/metadata.h"

namespace ember::ttrpc {

class Context {
 public:
  using Clock = std::chrono::steady_clock;

  // The server builds one per request; tests of handler code may build their own.
  explicit Context(std::string service = {}, std::string method = {}, Metadata metadata = {},
                   std::optional<Clock::time_point> deadline = std::nullopt);
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  const std::string& service() const { return service_; }
  const std::string& method() const { return method_; }
  const Metadata& metadata() const { return metadata_; }
  // Request.timeout_nano (0 = none) measured from the frame's arrival.
  std::optional<Clock::time_point> deadline() const { return deadline_; }

  // True once the deadline passed, the peer went away or the server shuts
  // down. The caller has then been answered already (or is gone); whatever
  // the handler returns afterwards is dropped.
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }

  // Runs `fn` once when the call is cancelled; if it already is, runs it at
  // once on this thread (like std::stop_callback). The server runs it on its
  // IO thread with no lock of the context held; keep it short (notify a
  // condition variable). Register before taking a mutex that `fn` takes.
  // Callbacks are dropped when the handler returns, and finish() waits for
  // one that is running, so they may capture the handler's locals.
  //
  //   ctx.on_cancel([&] { std::lock_guard l(mu); cv.notify_all(); });
  //   std::unique_lock lock(mu);
  //   cv.wait(lock, [&] { return exited || ctx.cancelled(); });
  void on_cancel(std::function<void()> fn);

  // Cancels the call and runs the callbacks. Used by the server (deadline,
  // disconnect, shutdown) and by tests; idempotent.
  void cancel();

  // Drops pending callbacks and ignores later on_cancel() calls; waits for a
  // callback that is running right now. The server calls it when the handler
  // returned.
  void finish();

 private:
  std::string service_;
  std::string method_;
  Metadata metadata_;
  std::optional<Clock::time_point> deadline_;
  std::atomic<bool> cancelled_{false};
  std::mutex mu_;
  std::condition_variable callbacks_done_;
  bool finished_ = false;
  bool running_callbacks_ = false;
  std::vector<std::function<void()>> callbacks_;
};

}  // namespace ember::ttrpc
