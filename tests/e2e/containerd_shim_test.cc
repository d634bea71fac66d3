// containerd-shim-ember-v2 under a real containerd (Debian's 1.6), driven
// with `ctr`: every container runs in a microVM (QEMU microvm + ember's
// devices over vhost-user here; the ember backend where KVM runs Linux).
// After every test nothing of ember may be left behind (expect_clean).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "tests/e2e/containerd_fixture.h"
#include "tests/harness/qemu_guest.h"
#include "tests/harness/require.h"
#include "vmm/common/child_process.h"
#include "vmm/common/unique_fd.h"

namespace ember::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

#define REQUIRE_STACK()                                                                           \
  do {                                                                                            \
    EMBER_REQUIRE(running_as_root(), "needs root (containerd, mounts)");                          \
    EMBER_REQUIRE(have_containerd(), "containerd and ctr not installed");                         \
    EMBER_REQUIRE(have_qemu(), "qemu-system-x86_64 not installed");                               \
    EMBER_REQUIRE(fs::exists(shim_binary_dir() / "containerd-shim-ember-v2"), "shim not built");  \
    EMBER_REQUIRE(have_agent_image(), "guest image missing in " + guest_image_dir().string() +    \
                                          ": build the guest-image target");                      \
  } while (0)

int exit_code(const CommandResult& r) { return WIFEXITED(r.status) ? WEXITSTATUS(r.status) : -1; }

std::string host_kernel_release() {
  utsname u{};
  ::uname(&u);
  return u.release;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

class ContainerdShimTest : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_STACK();
    ctrd_ = std::make_unique<PrivateContainerd>();
    ctrd_->import_busybox();
  }
  void TearDown() override {
    if (!ctrd_) return;
    // Whatever the test left through ctr goes the normal way first; what the
    // shim leaves after that is a leak.
    ctrd_->remove_all_containers();
    ctrd_->expect_clean(ids_);
    ctrd_.reset();
  }

  // `ctr run` with the ember runtime; `extra` go before the image.
  CommandResult run(const std::string& id, const std::vector<std::string>& command,
                    const std::vector<std::string>& extra = {"--rm"}) {
    ids_.push_back(id);
    std::vector<std::string> args = {"run"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto ember = ctrd_->ember_run_args();
    args.insert(args.end(), ember.begin(), ember.end());
    args.push_back(kBusyboxImage);
    args.push_back(id);
    args.insert(args.end(), command.begin(), command.end());
    return ctrd_->ctr(args);
  }
  std::string task_status(const std::string& id) {
    auto r = ctrd_->ctr({"tasks", "ls"});
    std::istringstream lines(r.output);
    std::string line;
    while (std::getline(lines, line)) {
      std::istringstream f(line);
      std::string tid, pid, status;
      f >> tid >> pid >> status;
      if (tid == id) return status;
    }
    return "";
  }
  void cleanup(const std::string& id) {
    ctrd_->ctr({"tasks", "kill", "-s", "SIGKILL", id});
    ctrd_->ctr({"tasks", "rm", "-f", id});
    ctrd_->ctr({"containers", "rm", id});
  }

  std::unique_ptr<PrivateContainerd> ctrd_;
  std::vector<std::string> ids_;
};

TEST_F(ContainerdShimTest, CtrRunPrintsOutputFromInsideTheMicroVm) {
  auto r = run("hello", {"sh", "-c", "echo Hello from $(uname -r) inside an ember microVM"});
  ASSERT_EQ(exit_code(r), 0) << r.output << ctrd_->describe();
  std::smatch m;
  std::string out = trim(r.output);
  ASSERT_TRUE(std::regex_search(out, m, std::regex("Hello from (\\S+) inside an ember microVM"))) << out;
  // The guest's kernel answered, not the host's.
  EXPECT_NE(m[1].str(), host_kernel_release());
  EXPECT_EQ(m[1].str().rfind("6.1.", 0), 0u) << m[1].str();
}

TEST_F(ContainerdShimTest, TaskEventsReachSubscribersInOrder) {
  // `ctr events` decodes every envelope: a type URL containerd's registry does
  // not know would show up as an unmarshal error instead of the event.
  fs::path events_log = ctrd_->dir() / "events.log";
  common::UniqueFd out(::open(events_log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  common::SpawnOptions options;
  options.argv = {"ctr", "--address", ctrd_->address(), "events"};
  options.stdout_fd = out.get();
  options.stderr_fd = out.get();
  auto subscriber = common::ChildProcess::spawn(options);
  std::this_thread::sleep_for(300ms);
  auto r = run("evented", {"sh", "-c", "exit 3"});
  EXPECT_EQ(exit_code(r), 3) << r.output << ctrd_->describe();
  std::this_thread::sleep_for(1s);
  subscriber.kill(SIGTERM);
  subscriber.wait();
  std::ifstream in(events_log);
  std::stringstream text;
  text << in.rdbuf();
  std::vector<std::string> topics;
  std::istringstream lines(text.str());
  std::string line;
  while (std::getline(lines, line)) {
    if (line.find("\"evented\"") == std::string::npos) continue;
    for (const char* t : {"/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"}) {
      if (line.find(std::string(" ") + t + " ") != std::string::npos) topics.push_back(t);
    }
  }
  EXPECT_EQ(topics, (std::vector<std::string>{"/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"}))
      << text.str();
  EXPECT_EQ(text.str().find("unmarshal"), std::string::npos) << text.str();
  EXPECT_NE(text.str().find("\"exit_status\":3"), std::string::npos) << text.str();
}

TEST_F(ContainerdShimTest, CtrRunPropagatesTheExitCode) {
  auto r = run("exit7", {"sh", "-c", "echo about to fail; exit 7"});
  EXPECT_EQ(exit_code(r), 7) << r.output << ctrd_->describe();
  EXPECT_NE(r.output.find("about to fail"), std::string::npos) << r.output;
}

TEST_F(ContainerdShimTest, CtrRunStdinRoundTrips) {
  ids_.push_back("stdin");
  auto args = ctrd_->ember_run_args();
  std::string ember;
  for (auto& a : args) ember += " " + a;
  auto r = ctrd_->shell("printf 'line one\\nline two\\n' | {ctr} run --rm" + ember + " " + kBusyboxImage +
                        " stdin sh -c 'while read l; do echo \"got: $l\"; done'");
  ASSERT_EQ(exit_code(r), 0) << r.output << ctrd_->describe();
  EXPECT_NE(r.output.find("got: line one\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("got: line two\n"), std::string::npos) << r.output;
}

TEST_F(ContainerdShimTest, LogUriFileCollectsStdoutAndStderr) {
  fs::path log_file = ctrd_->dir() / "logs" / "logged.log";
  auto r = run("logged", {"sh", "-c", "echo to stdout; echo to stderr >&2"},
               {"--rm", "--log-uri", "file://" + log_file.string()});
  ASSERT_EQ(exit_code(r), 0) << r.output << ctrd_->describe();
  std::ifstream in(log_file);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_NE(text.str().find("to stdout\n"), std::string::npos) << text.str();
  EXPECT_NE(text.str().find("to stderr\n"), std::string::npos) << text.str();
}

TEST_F(ContainerdShimTest, CtrRunWithAPlainRootfsDirectory) {
  // `ctr run --rootfs DIR`: containerd passes no mounts, config.json's root.path names the tree.
  // No image config either: no PATH, so the command is absolute.
  fs::path out = ctrd_->dir() / "plain";
  auto built = run_command({"bash", (fs::path(EMBER_SOURCE_DIR) / "tests/agent-rootfs/build-rootfs.sh").string(),
                            out.string()});
  ASSERT_TRUE(built.ok()) << built.output;
  std::ofstream(out / "rootfs" / "marker") << "from a plain directory\n";
  ids_.push_back("plainroot");
  std::vector<std::string> args = {"run", "--rm"};
  auto ember = ctrd_->ember_run_args();
  args.insert(args.end(), ember.begin(), ember.end());
  args.insert(args.end(), {"--rootfs", (out / "rootfs").string(), "plainroot", "/bin/cat", "/marker"});
  auto r = ctrd_->ctr(args);
  ASSERT_EQ(exit_code(r), 0) << r.output << ctrd_->describe();
  EXPECT_NE(r.output.find("from a plain directory"), std::string::npos) << r.output;
}

TEST_F(ContainerdShimTest, CtrRunWithATerminal) {
  EMBER_REQUIRE(!find_program("script").empty(), "script (bsdutils) not installed");
  ids_.push_back("tty");
  auto args = ctrd_->ember_run_args();
  std::string ember;
  for (auto& a : args) ember += " " + a;
  // `script` gives ctr the terminal it insists on for -t.
  auto r = ctrd_->shell("script -qec \"{ctr} run --rm -t" + ember + " " + kBusyboxImage +
                        " tty sh -c 'tty; test -t 1 && echo is-a-tty'\" /dev/null");
  ASSERT_EQ(exit_code(r), 0) << r.output << ctrd_->describe();
  EXPECT_NE(r.output.find("/dev/pts/"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("is-a-tty"), std::string::npos) << r.output;
}

// The ticks a container printed so far ("tick 0", "tick 1", ...), in the
// order they appear in its log file.
std::vector<int> ticks_in(const fs::path& log_file) {
  std::ifstream in(log_file);
  std::vector<int> ticks;
  std::string line;
  std::smatch m;
  static const std::regex tick("tick ([0-9]+)");
  while (std::getline(in, line)) {
    if (std::regex_search(line, m, tick)) ticks.push_back(std::stoi(m[1].str()));
  }
  return ticks;
}

TEST_F(ContainerdShimTest, DetachedTaskExecPsMetricsPauseResumeKill) {
  // PID 1 of the container ignores signals it has no handler for: trap TERM.
  // It prints a numbered tick every 200 ms, across the pause below.
  fs::path log_file = ctrd_->dir() / "logs" / "daemon.log";
  auto r = run("daemon",
               {"sh", "-c",
                "trap 'exit 42' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"},
               {"-d", "--log-uri", "file://" + log_file.string()});
  ASSERT_EQ(exit_code(r), 0) << r.output << ctrd_->describe();
  EXPECT_EQ(task_status("daemon"), "RUNNING");

  auto exec = ctrd_->ctr({"tasks", "exec", "--exec-id", "e1", "daemon", "sh", "-c", "echo exec says hi; exit 3"});
  EXPECT_EQ(exit_code(exec), 3) << exec.output << ctrd_->describe();
  EXPECT_NE(exec.output.find("exec says hi"), std::string::npos) << exec.output;

  auto ps = ctrd_->ctr({"tasks", "ps", "daemon"});
  ASSERT_TRUE(ps.ok()) << ps.output;
  EXPECT_NE(ps.output.find("PID"), std::string::npos) << ps.output;
  EXPECT_GE(std::count(ps.output.begin(), ps.output.end(), '\n'), 2) << ps.output;

  auto metrics = ctrd_->ctr({"tasks", "metrics", "daemon"});
  ASSERT_TRUE(metrics.ok()) << metrics.output << ctrd_->describe();
  EXPECT_NE(metrics.output.find("memory"), std::string::npos) << metrics.output;

  for (int i = 0; i < 300 && ticks_in(log_file).size() < 3; ++i) std::this_thread::sleep_for(100ms);
  ASSERT_GE(ticks_in(log_file).size(), 3u) << "no output from the detached task\n" << ctrd_->describe();
  ASSERT_TRUE(ctrd_->ctr({"tasks", "pause", "daemon"}).ok());
  EXPECT_EQ(task_status("daemon"), "PAUSED");
  // QEMU's `stop` stopped the vhost-user rings; stay paused for a while.
  std::this_thread::sleep_for(1s);
  size_t ticks_paused = ticks_in(log_file).size();
  ASSERT_TRUE(ctrd_->ctr({"tasks", "resume", "daemon"}).ok());
  EXPECT_EQ(task_status("daemon"), "RUNNING");

  // The container kept its stdout: what it prints after the resume reaches
  // the log, and nothing it printed went missing.
  std::vector<int> ticks;
  for (int i = 0; i < 300; ++i) {
    ticks = ticks_in(log_file);
    if (ticks.size() >= ticks_paused + 5) break;
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_GE(ticks.size(), ticks_paused + 5)
      << "output of the running task stopped at the pause (" << ticks_paused << " ticks before it)\n"
      << ctrd_->describe();
  for (size_t i = 0; i < ticks.size(); ++i) ASSERT_EQ(ticks[i], static_cast<int>(i)) << "tick lost or reordered";

  // The agent connection survives the VM pause.
  auto after = ctrd_->ctr({"tasks", "exec", "--exec-id", "e2", "daemon", "echo", "after resume"});
  EXPECT_EQ(exit_code(after), 0) << after.output << ctrd_->describe();

  ASSERT_TRUE(ctrd_->ctr({"tasks", "kill", "-s", "SIGTERM", "daemon"}).ok());
  for (int i = 0; i < 300 && task_status("daemon") != "STOPPED"; ++i) std::this_thread::sleep_for(100ms);
  EXPECT_EQ(task_status("daemon"), "STOPPED");
  auto ls = ctrd_->ctr({"tasks", "ls"});
  EXPECT_NE(ls.output.find("STOPPED"), std::string::npos) << ls.output;
  auto rm = ctrd_->ctr({"tasks", "rm", "daemon"});
  ASSERT_TRUE(rm.ok()) << rm.output;
  EXPECT_NE(rm.output.find("exit code 42"), std::string::npos) << "SIGTERM reached the trap: " << rm.output;
  ASSERT_TRUE(ctrd_->ctr({"containers", "rm", "daemon"}).ok());
}

TEST_F(ContainerdShimTest, TwoContainersOfAPodShareOneVm) {
  const std::string pod = "--annotation=io.kubernetes.cri.sandbox-id=pod1";
  auto a = run("pod1", {"sleep", "600"}, {"-d", pod});
  ASSERT_EQ(exit_code(a), 0) << a.output << ctrd_->describe();
  auto b = run("app1", {"sleep", "600"}, {"-d", pod});
  ASSERT_EQ(exit_code(b), 0) << b.output << ctrd_->describe();
  EXPECT_EQ(ctrd_->shim_pids().size(), 1u) << "one shim per pod";
  EXPECT_EQ(ctrd_->qemu_pids().size(), 1u) << "one VM per pod";

  // Same guest, separate root filesystems.
  auto w = ctrd_->ctr({"tasks", "exec", "--exec-id", "w", "app1", "sh", "-c", "echo app > /mine; uname -n; cat /mine"});
  ASSERT_EQ(exit_code(w), 0) << w.output << ctrd_->describe();
  auto boot_a = ctrd_->ctr({"tasks", "exec", "--exec-id", "b1", "pod1", "cat", "/proc/sys/kernel/random/boot_id"});
  auto boot_b = ctrd_->ctr({"tasks", "exec", "--exec-id", "b2", "app1", "cat", "/proc/sys/kernel/random/boot_id"});
  ASSERT_TRUE(boot_a.ok() && boot_b.ok()) << boot_a.output << boot_b.output;
  EXPECT_EQ(boot_a.output, boot_b.output) << "both containers run in one kernel";
  auto other = ctrd_->ctr({"tasks", "exec", "--exec-id", "r", "pod1", "cat", "/mine"});
  EXPECT_NE(exit_code(other), 0) << "app1's file leaked into pod1: " << other.output;

  cleanup("app1");
  EXPECT_EQ(ctrd_->qemu_pids().size(), 1u) << "the pod's VM outlives its app container";
  cleanup("pod1");
}

TEST_F(ContainerdShimTest, ContainerdRestartKeepsTheContainerRunning) {
  auto r = run("survivor", {"sleep", "600"}, {"-d"});
  ASSERT_EQ(exit_code(r), 0) << r.output << ctrd_->describe();
  auto shims = ctrd_->shim_pids();
  ctrd_->stop(/*kill=*/true);
  EXPECT_EQ(ctrd_->shim_pids(), shims) << "the shim outlives containerd";
  ctrd_->start();
  EXPECT_EQ(task_status("survivor"), "RUNNING") << ctrd_->describe();
  auto exec = ctrd_->ctr({"tasks", "exec", "--exec-id", "after", "survivor", "echo", "still here"});
  EXPECT_EQ(exit_code(exec), 0) << exec.output << ctrd_->describe();
  EXPECT_NE(exec.output.find("still here"), std::string::npos);
  cleanup("survivor");
}

TEST_F(ContainerdShimTest, KilledShimIsCleanedUpByDelete) {
  auto r = run("victim", {"sleep", "600"}, {"-d"});
  ASSERT_EQ(exit_code(r), 0) << r.output << ctrd_->describe();
  auto shims = ctrd_->shim_pids();
  ASSERT_EQ(shims.size(), 1u);
  ASSERT_EQ(ctrd_->qemu_pids().size(), 1u);
  ::kill(shims[0], SIGKILL);
  // containerd sees the connection drop, runs `delete` and marks the task stopped.
  for (int i = 0; i < 300 && task_status("victim") == "RUNNING"; ++i) std::this_thread::sleep_for(100ms);
  EXPECT_NE(task_status("victim"), "RUNNING") << ctrd_->describe();
  for (int i = 0; i < 100 && !ctrd_->qemu_pids().empty(); ++i) std::this_thread::sleep_for(100ms);
  EXPECT_TRUE(ctrd_->qemu_pids().empty()) << "the VM of the dead shim is gone";
  cleanup("victim");
}

TEST_F(ContainerdShimTest, VmmDeathEndsEveryTaskOfTheVm) {
  const std::string pod = "--annotation=io.kubernetes.cri.sandbox-id=crashpod";
  ASSERT_EQ(exit_code(run("crashpod", {"sleep", "600"}, {"-d", pod})), 0) << ctrd_->describe();
  ASSERT_EQ(exit_code(run("crashapp", {"sleep", "600"}, {"-d", pod})), 0) << ctrd_->describe();
  auto vmm = ctrd_->qemu_pids();
  ASSERT_EQ(vmm.size(), 1u);
  ::kill(vmm[0], SIGKILL);
  for (int i = 0; i < 300 && (task_status("crashpod") != "STOPPED" || task_status("crashapp") != "STOPPED"); ++i) {
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(task_status("crashpod"), "STOPPED") << ctrd_->describe();
  EXPECT_EQ(task_status("crashapp"), "STOPPED") << ctrd_->describe();
  auto rm = ctrd_->ctr({"tasks", "rm", "crashapp"});
  EXPECT_TRUE(rm.ok()) << rm.output;
  EXPECT_NE(rm.output.find("exit code 255"), std::string::npos) << rm.output;
  cleanup("crashapp");
  cleanup("crashpod");
}

TEST_F(ContainerdShimTest, MissingKernelIsAClearErrorAtCreate) {
  fs::path config = ctrd_->dir() / "broken.toml";
  std::ofstream(config) << "[vm]\nkernel = \"/nonexistent/vmlinux\"\n[shim]\nstate_dir = \""
                        << ctrd_->ember_state_dir().string() << "\"\n";
  ids_.push_back("nokernel");
  auto r = ctrd_->ctr({"run", "--rm", "--runtime", kEmberRuntime, "--runtime-config-path", config.string(),
                       kBusyboxImage, "nokernel", "true"});
  EXPECT_NE(exit_code(r), 0);
  EXPECT_NE(r.output.find("config " + config.string() + ": vm.kernel: /nonexistent/vmlinux: No such file or directory"),
            std::string::npos)
      << r.output;
  ctrd_->ctr({"containers", "rm", "nokernel"});
}

}  // namespace
}  // namespace ember::testing
