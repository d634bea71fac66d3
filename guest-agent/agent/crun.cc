#include "guest-agent/agent/crun.h"

#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "vmm/common/child_process.h"

namespace ember::agent {
namespace {

std::string read_and_remove(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  ::unlink(path.c_str());
  std::string s = text.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

bool Crun::Result::ok() const { return WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0; }

std::string Crun::Result::describe(const std::string& what) const {
  std::string s = what + ": " + common::describe_wait_status(wait_status);
  if (!message.empty()) s += ": " + message;
  return s;
}

Crun::Crun(Options options, Reaper& reaper, AgentLog& log)
    : options_(std::move(options)), reaper_(reaper), log_(log) {}

void Crun::run(std::vector<std::string> args, Stdio stdio, Callback done) {
  std::string log_path = options_.log_dir + "/crun-" + std::to_string(::getpid()) + "-" +
                         std::to_string(next_call_++) + ".log";
  common::SpawnOptions spawn;
  spawn.argv = {options_.binary, "--root=" + options_.state_dir, "--log=file:" + log_path};
  spawn.argv.insert(spawn.argv.end(), options_.global_flags.begin(), options_.global_flags.end());
  spawn.argv.insert(spawn.argv.end(), args.begin(), args.end());
  spawn.stdin_fd = stdio.in;
  spawn.stdout_fd = stdio.out;
  spawn.stderr_fd = stdio.err;

  std::string command;
  for (auto& a : args) command += (command.empty() ? "" : " ") + a;
  log_.debug("crun " + command);

  uint64_t since = reaper_.mark();
  pid_t pid = common::ChildProcess::spawn(spawn).release();
  reaper_.watch(
      pid,
      [log_path, done = std::move(done)](int status) {
        Result result;
        result.wait_status = status;
        result.message = read_and_remove(log_path);
        done(std::move(result));
      },
      since);
}

}  // namespace ember::agent
