#include "tests/harness/command.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <sstream>

#include "vmm/common/child_process.h"
#include "vmm/common/error.h"
#include "vmm/common/unique_fd.h"

namespace ember::testing {

bool CommandResult::ok() const { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }

std::string CommandResult::describe() const { return common::describe_wait_status(status); }

CommandResult run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) < 0) common::throw_errno("run " + argv.at(0) + ": pipe");
  common::UniqueFd read_end(fds[0]), write_end(fds[1]);

  common::SpawnOptions options;
  options.argv = argv;
  options.stdout_fd = write_end.get();
  options.stderr_fd = write_end.get();
  options.die_with_parent = true;
  common::ChildProcess child = common::ChildProcess::spawn(options);
  write_end.reset();

  CommandResult result;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  bool timed_out = false;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd pfd{read_end.get(), POLLIN, 0};
    int r = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) common::throw_errno("run " + argv[0] + ": poll");
    if (r == 0) continue;
    char buf[4096];
    ssize_t n = ::read(read_end.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF: the program (and anything it started) closed its output
    result.output.append(buf, static_cast<size_t>(n));
  }
  if (timed_out) {
    child.kill(SIGKILL);
    result.output += "\n[harness] killed " + argv[0] + " after " + std::to_string(timeout.count()) + " ms\n";
  }
  result.status = child.wait();
  return result;
}

std::string run_checked(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  CommandResult result = run_command(argv, timeout);
  if (!result.ok()) {
    std::ostringstream cmd;
    for (const auto& a : argv) cmd << (cmd.tellp() > 0 ? " " : "") << a;
    throw common::Error("`" + cmd.str() + "` " + result.describe() + ":\n" + result.output);
  }
  return result.output;
}

std::string find_program(const std::string& program) {
  if (program.find('/') != std::string::npos) return ::access(program.c_str(), X_OK) == 0 ? program : "";
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    std::string candidate = dir + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  // Debian keeps mkfs.ext4 and debugfs in /sbin, which a non-root PATH lacks.
  for (const char* dir : {"/usr/sbin", "/sbin"}) {
    std::string candidate = std::string(dir) + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

}  // namespace ember::testing
