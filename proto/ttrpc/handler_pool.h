// Elastic thread pool for server handlers (internal to ember-ttrpc).
//
// Every queued task gets a thread as soon as one is free or can be started
// (up to max_threads), so a handler that blocks for a container's lifetime
// (Task.Wait) never delays the others. Idle threads retire after
// idle_timeout.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace ember::ttrpc {

class HandlerPool {
 public:
  HandlerPool(std::size_t max_threads, std::chrono::milliseconds idle_timeout,
              std::string thread_name);
  HandlerPool(const HandlerPool&) = delete;
  HandlerPool& operator=(const HandlerPool&) = delete;
  ~HandlerPool();  // join()

  // `task` must not throw. After join() tasks are dropped.
  void submit(std::function<void()> task);
  // Waits until no task runs or waits, or until `deadline`; true if idle.
  bool wait_idle_until(std::chrono::steady_clock::time_point deadline);
  // Runs what is queued, then joins every thread. Idempotent.
  void join();
  // True on one of this pool's threads.
  bool on_pool_thread() const;
  std::size_t thread_count() const;

 private:
  void worker();
  void reap_retired_locked(std::vector<std::thread>& out);

  const std::size_t max_threads_;
  const std::chrono::milliseconds idle_timeout_;
  const std::string thread_name_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable idle_cv_;
  std::deque<std::function<void()>> tasks_;
  std::size_t idle_ = 0;
  std::size_t busy_ = 0;
  bool stopping_ = false;
  std::map<std::thread::id, std::thread> workers_;
  std::vector<std::thread> retired_;
};

}  // namespace ember::ttrpc
