// Owning handle for a child process: killed (SIGKILL) and reaped when the
// handle goes away while the child still runs, so no test or daemon leaks one.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ember::common {

struct SpawnOptions {
  std::vector<std::string> argv;  // argv[0] is looked up in PATH when it has no '/'
  // Environment as NAME=value; std::nullopt inherits the parent's.
  std::optional<std::vector<std::string>> env;
  std::string cwd;  // empty: inherit
  // Borrowed fds that become the child's 0/1/2; -1 means /dev/null.
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
  // Further fds to pass: {child_fd, parent_fd}. Everything else is closed.
  std::vector<std::pair<int, int>> extra_fds;
  bool new_session = false;       // setsid(): detach from the caller's terminal and group
  bool die_with_parent = false;   // PR_SET_PDEATHSIG(SIGKILL)
};

class ChildProcess {
 public:
  ChildProcess() = default;
  // Throws common::Error naming argv[0] and the reason if fork or exec fails.
  static ChildProcess spawn(const SpawnOptions& options);
  // Adopts an existing child pid.
  explicit ChildProcess(pid_t pid) : pid_(pid) {}
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ChildProcess(ChildProcess&& other) noexcept
      : pid_(std::exchange(other.pid_, -1)), status_(other.status_) {}
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0 && !status_; }

  // Raw wait status (see waitpid(2)) once the child exited; nullopt if it still runs.
  std::optional<int> try_wait();
  int wait();
  // Waits up to `timeout_ms`; nullopt on timeout.
  std::optional<int> wait_for(int timeout_ms);
  void kill(int signal);
  // Releases ownership: the child is no longer killed or reaped by this handle.
  pid_t release() { return std::exchange(pid_, -1); }

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

// "exited 3", "killed by signal 9 (Killed)".
std::string describe_wait_status(int status);

}  // namespace ember::common
