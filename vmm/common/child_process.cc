#include "vmm/common/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <linux/close_range.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "vmm/common/error.h"
#include "vmm/common/unique_fd.h"

extern char** environ;

namespace ember::common {
namespace {

[[noreturn]] void child_fail(int report_fd, const char* step) {
  int err = errno;
  char msg[128];
  int n = snprintf(msg, sizeof msg, "%s: %d", step, err);
  if (n > 0) (void)!::write(report_fd, msg, static_cast<size_t>(n));
  _exit(127);
}

// Moves every fd the child must keep above the range used for the final
// layout, so dup2 calls cannot clobber a source that is still needed.
void exec_child(const SpawnOptions& o, std::vector<char*>& argv, std::vector<char*>& envp, int report_fd) {
  if (o.die_with_parent) ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (o.new_session) ::setsid();
  sigset_t all;
  sigemptyset(&all);
  sigprocmask(SIG_SETMASK, &all, nullptr);
  for (int s = 1; s < NSIG; ++s) signal(s, SIG_DFL);

  int devnull = ::open("/dev/null", O_RDWR);
  if (devnull < 0) child_fail(report_fd, "open /dev/null");
  std::vector<std::pair<int, int>> layout = {{0, o.stdin_fd < 0 ? devnull : o.stdin_fd},
                                             {1, o.stdout_fd < 0 ? devnull : o.stdout_fd},
                                             {2, o.stderr_fd < 0 ? devnull : o.stderr_fd}};
  layout.insert(layout.end(), o.extra_fds.begin(), o.extra_fds.end());
  int high = 1000;
  for (auto& [target, source] : layout) {
    int moved = ::fcntl(source, F_DUPFD, high);
    if (moved < 0) child_fail(report_fd, "dup fd");
    source = moved;
    high = moved + 1;
  }
  for (auto& [target, source] : layout) {
    if (::dup2(source, target) < 0) child_fail(report_fd, "dup2");
  }
  // Everything above the final layout closes at exec (the report pipe too, which
  // is how the parent learns that exec succeeded).
  int max_target = 2;
  for (auto& [target, source] : layout) max_target = std::max(max_target, target);
  ::syscall(SYS_close_range, static_cast<unsigned>(max_target + 1), ~0u, CLOSE_RANGE_CLOEXEC);
  if (!o.cwd.empty() && ::chdir(o.cwd.c_str()) < 0) child_fail(report_fd, "chdir");
  char** env = o.env ? envp.data() : environ;
  ::execvpe(argv[0], argv.data(), env);
  child_fail(report_fd, "exec");
}

}  // namespace

ChildProcess ChildProcess::spawn(const SpawnOptions& o) {
  if (o.argv.empty()) throw Error("spawn: empty argv");
  std::vector<char*> argv;
  for (auto& a : o.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  if (o.env) {
    for (auto& e : *o.env) envp.push_back(const_cast<char*>(e.c_str()));
  }
  envp.push_back(nullptr);

  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) < 0) throw_errno("spawn " + o.argv[0] + ": pipe");
  UniqueFd report_read(pipefd[0]), report_write(pipefd[1]);

  pid_t pid = ::fork();
  if (pid < 0) throw_errno("spawn " + o.argv[0] + ": fork");
  if (pid == 0) exec_child(o, argv, envp, report_write.get());

  report_write.reset();
  ChildProcess child(pid);
  char msg[128] = {};
  ssize_t n;
  while ((n = ::read(report_read.get(), msg, sizeof msg - 1)) < 0 && errno == EINTR) {
  }
  if (n > 0) {
    child.wait();
    const char* colon = std::strrchr(msg, ':');
    int err = colon ? std::atoi(colon + 1) : 0;
    std::string step(msg, colon ? static_cast<size_t>(colon - msg) : std::strlen(msg));
    throw Error("spawn " + o.argv[0] + ": " + step + ": " + errno_text(err));
  }
  return child;
}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    this->~ChildProcess();
    pid_ = std::exchange(other.pid_, -1);
    status_ = other.status_;
  }
  return *this;
}

ChildProcess::~ChildProcess() {
  if (running()) {
    ::kill(pid_, SIGKILL);
    wait();
  }
}

std::optional<int> ChildProcess::try_wait() {
  if (status_ || pid_ <= 0) return status_;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) status_ = status;
  return status_;
}

int ChildProcess::wait() {
  if (status_) return *status_;
  if (pid_ <= 0) throw Error("wait: no child process");
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0) {
    if (errno != EINTR) throw_errno("waitpid " + std::to_string(pid_));
  }
  status_ = status;
  return status;
}

std::optional<int> ChildProcess::wait_for(int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  auto delay = std::chrono::milliseconds(1);
  while (!try_wait()) {
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(delay);
    delay = std::min(delay * 2, std::chrono::milliseconds(20));
  }
  return status_;
}

void ChildProcess::kill(int signal) {
  if (running()) ::kill(pid_, signal);
}

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return "exited " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return "killed by signal " + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
  }
  return "wait status " + std::to_string(status);
}

}  // namespace ember::common
