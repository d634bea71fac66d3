#include "shim/util/run_command.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmm/common/child_process.h"
#include "vmm/common/error.h"
#include "vmm/common/unique_fd.h"

namespace ember::shim {

bool CommandResult::ok() const { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }

CommandResult run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) < 0) common::throw_errno("run " + argv.at(0) + ": pipe");
  common::UniqueFd read_end(fds[0]);
  common::UniqueFd write_end(fds[1]);
  common::SpawnOptions options;
  options.argv = argv;
  options.stdout_fd = write_end.get();
  options.stderr_fd = write_end.get();
  common::ChildProcess child = common::ChildProcess::spawn(options);
  write_end.reset();

  CommandResult result;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      child.kill(SIGKILL);
      result.output += "\n(killed after " + std::to_string(timeout.count()) + " ms)";
      break;
    }
    pollfd pfd{read_end.get(), POLLIN, 0};
    int n = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;
    ssize_t got = ::read(read_end.get(), buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    if (result.output.size() < (1u << 20)) result.output.append(buf, static_cast<size_t>(got));
  }
  result.status = child.wait();
  return result;
}

std::string run_checked(const std::string& what, const std::vector<std::string>& argv,
                        std::chrono::milliseconds timeout) {
  CommandResult r = run_command(argv, timeout);
  if (!r.ok()) {
    std::string out = r.output;
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    throw common::Error(what + ": " + argv.at(0) + " " + common::describe_wait_status(r.status) +
                        (out.empty() ? "" : ": " + out));
  }
  return r.output;
}

}  // namespace ember::shim
