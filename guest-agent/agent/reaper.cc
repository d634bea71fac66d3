#include "guest-agent/agent/reaper.h"

#include <signal.h>
#include <sys/signalfd.h>
#include <sys/wait.h>

#include <cerrno>

#include "vmm/common/error.h"

namespace ember::agent {

void Reaper::block_child_signal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  if (::pthread_sigmask(SIG_BLOCK, &set, nullptr) != 0) throw common::Error("block SIGCHLD failed");
}

Reaper::Reaper(common::EventLoop& loop) : loop_(loop) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  signal_fd_.reset(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!signal_fd_) common::throw_errno("signalfd SIGCHLD");
  loop_.add(signal_fd_.get(), EPOLLIN, [this](uint32_t) {
    signalfd_siginfo info;
    while (::read(signal_fd_.get(), &info, sizeof info) == sizeof info) {
    }
    reap();
  });
}

Reaper::~Reaper() { loop_.remove(signal_fd_.get()); }

void Reaper::watch(pid_t pid, Callback callback, uint64_t since) {
  for (auto it = unclaimed_.begin(); it != unclaimed_.end(); ++it) {
    if (it->pid == pid && it->seq > since) {
      int status = it->status;
      unclaimed_.erase(it);
      loop_.post([callback = std::move(callback), status] { callback(status); });
      return;
    }
  }
  if (!is_child_process(pid) && !process_exists(pid)) {
    report_lost(pid, std::move(callback));
    return;
  }
  watchers_[pid] = std::move(callback);
}

void Reaper::report_lost(pid_t pid, Callback callback) {
  loop_.post([on_lost = on_lost_, pid, callback = std::move(callback)] {
    if (on_lost) on_lost(pid);
    callback(kLostStatus);
  });
}

std::vector<pid_t> Reaper::audit() {
  // Whatever already exited is reaped first: its watcher gets the real status.
  reap();
  std::vector<pid_t> lost;
  std::unordered_set<pid_t> suspects;
  for (auto it = watchers_.begin(); it != watchers_.end();) {
    pid_t pid = it->first;
    if (is_child_process(pid)) {
      ++it;
      continue;
    }
    // A process that still exists but is not ours may be between parents
    // (its parent just exited; re-parenting to the agent is under way):
    // lost only if it is still so at the next audit.
    if (process_exists(pid) && !suspects_.count(pid)) {
      suspects.insert(pid);
      ++it;
      continue;
    }
    lost.push_back(pid);
    report_lost(pid, std::move(it->second));
    it = watchers_.erase(it);
  }
  suspects_ = std::move(suspects);
  return lost;
}

bool process_exists(pid_t pid) { return ::kill(pid, 0) == 0 || errno == EPERM; }

bool is_child_process(pid_t pid) {
  for (;;) {
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0)
      return true;
    if (errno == EINTR) continue;
    return errno != ECHILD;
  }
}

void Reaper::unwatch(pid_t pid) { watchers_.erase(pid); }

void Reaper::reap() {
  for (;;) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid < 0 && errno == EINTR) continue;
    if (pid <= 0) return;  // 0: children left but none exited; ECHILD: none at all
    ++seq_;
    auto it = watchers_.find(pid);
    if (it == watchers_.end()) {
      // An orphan, or a process whose pid we learn later (crun exec writes the
      // pid file, the process may exit before crun does).
      unclaimed_.push_back({pid, status, seq_});
      if (unclaimed_.size() > kMaxUnclaimed) unclaimed_.pop_front();
      continue;
    }
    Callback callback = std::move(it->second);
    watchers_.erase(it);
    callback(status);
  }
}

}  // namespace ember::agent
