#include "proto/ttrpc/handler_pool.h"

#include <pthread.h>

#include <utility>

namespace ember::ttrpc {
namespace {

thread_local const HandlerPool* current_pool = nullptr;

}  // namespace

HandlerPool::HandlerPool(std::size_t max_threads, std::chrono::milliseconds idle_timeout,
                         std::string thread_name)
    : max_threads_(max_threads == 0 ? 1 : max_threads),
      idle_timeout_(idle_timeout),
      thread_name_(std::move(thread_name)) {}

HandlerPool::~HandlerPool() { join(); }

void HandlerPool::submit(std::function<void()> task) {
  std::vector<std::thread> finished;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    tasks_.push_back(std::move(task));
    // Idle threads claim queued tasks only when they wake up, so compare with
    // the queue, not with "is anyone idle".
    if (tasks_.size() > idle_ && workers_.size() < max_threads_) {
      std::thread thread([this] { worker(); });
      auto id = thread.get_id();
      workers_.emplace(id, std::move(thread));
    } else {
      work_cv_.notify_one();
    }
    reap_retired_locked(finished);
  }
  for (auto& t : finished) t.join();
}

bool HandlerPool::wait_idle_until(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mu_);
  return idle_cv_.wait_until(lock, deadline, [this] { return busy_ == 0 && tasks_.empty(); });
}

void HandlerPool::join() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (auto& [id, thread] : workers_) threads.push_back(std::move(thread));
    workers_.clear();
    reap_retired_locked(threads);
  }
  work_cv_.notify_all();
  for (auto& t : threads) {
    if (t.joinable()) t.join();
  }
}

bool HandlerPool::on_pool_thread() const { return current_pool == this; }

std::size_t HandlerPool::thread_count() const {
  std::lock_guard lock(mu_);
  return workers_.size();
}

void HandlerPool::reap_retired_locked(std::vector<std::thread>& out) {
  for (auto& t : retired_) out.push_back(std::move(t));
  retired_.clear();
}

void HandlerPool::worker() {
  current_pool = this;
  pthread_setname_np(pthread_self(), thread_name_.substr(0, 15).c_str());
  std::unique_lock lock(mu_);
  for (;;) {
    if (!tasks_.empty()) {
      auto task = std::move(tasks_.front());
      tasks_.pop_front();
      ++busy_;
      lock.unlock();
      task();
      task = nullptr;  // release captures outside the lock
      lock.lock();
      --busy_;
      if (busy_ == 0 && tasks_.empty()) idle_cv_.notify_all();
      continue;
    }
    if (stopping_) return;  // join() owns our std::thread
    ++idle_;
    bool woke =
        work_cv_.wait_for(lock, idle_timeout_, [this] { return !tasks_.empty() || stopping_; });
    --idle_;
    if (!woke) break;
  }
  // Retiring: a thread cannot join itself, so hand our handle to whoever
  // submits or joins next.
  auto it = workers_.find(std::this_thread::get_id());
  if (it != workers_.end()) {
    retired_.push_back(std::move(it->second));
    workers_.erase(it);
  }
}

}  // namespace ember::ttrpc
