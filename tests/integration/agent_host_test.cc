// ember-agent as a host process (`ember-agent --listen unix:PATH --root DIR`),
// driven through the host-side AgentClient exactly as the shim drives it:
// real crun, a real busybox rootfs (directory, ext4 image on a loop device,
// EROFS + overlayfs), real cgroups (v1 on the development host).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "guest-agent/agent/client/agent_client.h"
#include "proto/ttrpc/socket.h"
#include "proto/ttrpc/status.h"
#include "tests/harness/command.h"
#include "tests/harness/require.h"
#include "tests/harness/temp_dir.h"
#include "vmm/common/child_process.h"
#include "vmm/common/error.h"

namespace ember::agent {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;
using ember::testing::find_program;
using ember::testing::run_checked;
using ember::testing::TempDir;

const std::string kAgent = std::string(EMBER_BINARY_DIR) + "/guest-agent/agent/ember-agent";

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Everything readable on `fd` until EOF; fails the test on timeout.
std::string read_to_eof(int fd, std::chrono::milliseconds timeout = 20s) {
  std::string out;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ADD_FAILURE() << "no EOF within " << timeout.count() << " ms; got \"" << out << "\"";
      return out;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

// Reads until `needle` appeared in what was read; returns all of it.
std::string read_until(int fd, const std::string& needle, std::chrono::milliseconds timeout = 20s) {
  std::string out;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (out.find(needle) == std::string::npos) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ADD_FAILURE() << "\"" << needle << "\" not seen within " << timeout.count() << " ms; got \""
                    << out << "\"";
      return out;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) {
      ADD_FAILURE() << "EOF before \"" << needle << "\"; got \"" << out << "\"";
      return out;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

void write_all(int fd, const std::string& data) {
  ASSERT_EQ(::send(fd, data.data(), data.size(), MSG_NOSIGNAL), static_cast<ssize_t>(data.size()));
}

// The rootfs (dir + ext4 + erofs) is built once per test binary run.
const fs::path& rootfs_dir() {
  static const fs::path dir = [] {
    fs::path out = fs::path(EMBER_BINARY_DIR) / "agent-rootfs";
    run_checked(
        {std::string(EMBER_SOURCE_DIR) + "/tests/agent-rootfs/build-rootfs.sh", out.string()});
    return out;
  }();
  return dir;
}

// A base OCI spec as `crun spec` writes it (what crun expects), loaded once.
const json& base_spec() {
  static const json spec = [] {
    TempDir dir("ember-agent-spec");
    run_checked({"sh", "-c", "cd '" + dir.path().string() + "' && crun spec"});
    return json::parse(read_text(dir / "config.json"));
  }();
  return spec;
}

json make_spec(const std::vector<std::string>& args) {
  json spec = base_spec();
  spec["process"]["args"] = args;
  spec["process"]["terminal"] = false;
  spec["hostname"] = "agent-test";
  return spec;
}

class AgentHostTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EMBER_REQUIRE(::geteuid() == 0, "needs root (mounts, cgroups, crun)");
    EMBER_REQUIRE(!find_program("crun").empty(), "needs crun");
    EMBER_REQUIRE(fs::exists("/bin/busybox"), "needs busybox-static");
    EMBER_REQUIRE(!find_program("mkfs.ext4").empty(), "needs e2fsprogs");
    rootfs_dir();
    base_spec();
    dir_ = std::make_unique<TempDir>("ember-agent-host");
    socket_ = (*dir_ / "agent.sock").string();
    cgroup_parent_ = "/ember-agent-test-" + std::to_string(::getpid());
    common::SpawnOptions o;
    o.argv = {kAgent, "--listen", "unix:" + socket_, "--root", (*dir_ / "root").string(),
              "--cgroup-parent", cgroup_parent_, "--debug",
              // The health check (lost exits, missed OOM notifications,
              // thrashing) often, so every test here exercises it.
              "--health-interval-ms", "200"};
    log_fd_.reset(
        ::open((*dir_ / "agent.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    o.stderr_fd = log_fd_.get();
    o.die_with_parent = true;
    agent_ = common::ChildProcess::spawn(o);
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!fs::exists(socket_)) {
      ASSERT_TRUE(agent_.running()) << "agent exited: " << agent_log();
      ASSERT_LT(std::chrono::steady_clock::now(), deadline)
          << "agent socket never appeared: " << agent_log();
      std::this_thread::sleep_for(10ms);
    }
    client_ = std::make_unique<AgentClient>(AgentClient::unix_dialer(socket_));
  }

  void TearDown() override {
    client_.reset();
    if (agent_.running()) {
      agent_.kill(SIGTERM);
      auto status = agent_.wait_for(15000);
      EXPECT_TRUE(status.has_value()) << "agent did not stop on SIGTERM";
      if (status) {
        EXPECT_EQ(*status, 0) << common::describe_wait_status(*status) << "\n" << agent_log();
      }
    }
    // Every container cgroup went with its container; only the parent is left.
    // (Should one survive, its processes are killed so no test leaks them.)
    for (const char* controller :
         {"memory", "pids", "cpu", "cpuacct", "freezer", "devices", "blkio", "cpuset", "systemd"}) {
      fs::path parent = fs::path("/sys/fs/cgroup") / controller / cgroup_parent_.substr(1);
      if (!fs::exists(parent)) continue;
      for (auto& e : fs::directory_iterator(parent)) {
        if (!e.is_directory()) continue;
        ADD_FAILURE() << "leftover cgroup " << e.path();
        std::ifstream procs(e.path() / "cgroup.procs");
        for (pid_t pid; procs >> pid;) ::kill(pid, SIGKILL);
        for (int i = 0; i < 100 && ::rmdir(e.path().c_str()) < 0; ++i)
          std::this_thread::sleep_for(10ms);
      }
      ::rmdir(parent.c_str());
    }
    // The health check's safety net must never fire on a healthy run.
    EXPECT_EQ(agent_log().find("exit status lost"), std::string::npos) << agent_log();
    if (HasFailure() && dir_)
      std::cerr << "---- agent log ----\n" << agent_log() << "-------------------\n";
  }

  std::string agent_log() const { return dir_ ? read_text(*dir_ / "agent.log") : ""; }

  v1::AgentClient& api() { return client_->api(); }

  v1::Rootfs dir_rootfs() {
    v1::Rootfs r;
    r.mutable_upper()->set_device((rootfs_dir() / "rootfs").string());
    r.mutable_upper()->set_fstype("bind");
    return r;
  }

  // A private copy of the ext4 image (containers write to it).
  v1::Rootfs ext4_rootfs(const std::string& name = "rootfs.ext4") {
    fs::path image = *dir_ / name;
    fs::copy_file(rootfs_dir() / "rootfs.ext4", image, fs::copy_options::overwrite_existing);
    v1::Rootfs r;
    r.mutable_upper()->set_device(image.string());
    r.mutable_upper()->set_fstype("ext4");
    return r;
  }

  // Creates a container; `stdio` names the streams to attach, opened right
  // after create (before start), as the shim does.
  struct Streams {
    common::UniqueFd in, out, err;
  };
  Streams create(const std::string& id, const json& spec, const v1::Rootfs& rootfs, bool in,
                 bool out, bool err, bool terminal = false, uint32_t width = 0,
                 uint32_t height = 0) {
    v1::CreateContainerRequest req;
    req.set_container_id(id);
    req.set_spec_json(spec.dump());
    *req.mutable_rootfs() = rootfs;
    auto* s = req.mutable_stdio();
    s->set_stdin(in);
    s->set_stdout(out);
    s->set_stderr(err);
    s->set_terminal(terminal);
    s->set_width(width);
    s->set_height(height);
    auto resp = api().CreateContainer(req);
    EXPECT_GT(resp.pid(), 0u);
    Streams st;
    if (in) st.in = client_->open_stream(id, "", StreamKind::kStdin);
    if (out) st.out = client_->open_stream(id, "", StreamKind::kStdout);
    if (err) st.err = client_->open_stream(id, "", StreamKind::kStderr);
    return st;
  }

  uint32_t start(const std::string& id, const std::string& exec_id = "") {
    v1::StartProcessRequest req;
    req.set_container_id(id);
    req.set_exec_id(exec_id);
    return api().StartProcess(req).pid();
  }

  v1::WaitProcessResponse wait(const std::string& id, const std::string& exec_id = "") {
    v1::WaitProcessRequest req;
    req.set_container_id(id);
    req.set_exec_id(exec_id);
    return api().WaitProcess(req, {.timeout = 30s});
  }

  void signal(const std::string& id, int sig, bool all = false, const std::string& exec_id = "") {
    v1::SignalProcessRequest req;
    req.set_container_id(id);
    req.set_exec_id(exec_id);
    req.set_signal(static_cast<uint32_t>(sig));
    req.set_all(all);
    api().SignalProcess(req);
  }

  v1::DeleteProcessResponse remove(const std::string& id, const std::string& exec_id = "") {
    v1::DeleteProcessRequest req;
    req.set_container_id(id);
    req.set_exec_id(exec_id);
    return api().DeleteProcess(req, {.timeout = 30s});
  }

  v1::ProcessStateResponse state(const std::string& id, const std::string& exec_id = "") {
    v1::ProcessStateRequest req;
    req.set_container_id(id);
    req.set_exec_id(exec_id);
    return api().ProcessState(req);
  }

  void exec(const std::string& id, const std::string& exec_id, const std::vector<std::string>& args,
            bool in, bool out, bool err, bool terminal = false, uint32_t width = 0,
            uint32_t height = 0) {
    json process = base_spec()["process"];
    process["args"] = args;
    v1::ExecProcessRequest req;
    req.set_container_id(id);
    req.set_exec_id(exec_id);
    req.set_process_json(process.dump());
    auto* s = req.mutable_stdio();
    s->set_stdin(in);
    s->set_stdout(out);
    s->set_stderr(err);
    s->set_terminal(terminal);
    s->set_width(width);
    s->set_height(height);
    api().ExecProcess(req);
  }

  ttrpc::Code code_of(const std::function<void()>& call) {
    try {
      call();
    } catch (const ttrpc::StatusError& e) {
      return e.code();
    }
    return ttrpc::Code::kOk;
  }

  std::unique_ptr<TempDir> dir_;
  std::string socket_;
  std::string cgroup_parent_;
  common::UniqueFd log_fd_;
  common::ChildProcess agent_;
  std::unique_ptr<AgentClient> client_;
};

TEST_F(AgentHostTest, ContainerOutputArrivesWithEofBeforeTheExit) {
  auto st = create("hello", make_spec({"sh", "-c", "echo hello from busybox; echo to stderr >&2"}),
                   dir_rootfs(), false, true, true);
  EXPECT_EQ(state("hello").status(), v1::PROCESS_STATUS_CREATED);
  start("hello");
  // Read nothing until the exit is reported: by then the agent must have
  // written every byte and closed the streams.
  auto exit = wait("hello");
  EXPECT_EQ(exit.exit_status(), 0u);
  EXPECT_GT(exit.exited_at().seconds(), 0);
  for (int fd : {st.out.get(), st.err.get()}) {
    pollfd p{fd, POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 0), 1) << "stream not readable when the exit arrived";
  }
  EXPECT_EQ(read_to_eof(st.out.get(), 100ms), "hello from busybox\n");
  EXPECT_EQ(read_to_eof(st.err.get(), 100ms), "to stderr\n");
  EXPECT_EQ(state("hello").status(), v1::PROCESS_STATUS_STOPPED);
  auto del = remove("hello");
  EXPECT_EQ(del.exit_status(), 0u);
  EXPECT_EQ(code_of([&] { state("hello"); }), ttrpc::Code::kNotFound);
}

TEST_F(AgentHostTest, ExitCodesAndSignalsBecomeContainerdStatuses) {
  create("seven", make_spec({"sh", "-c", "exit 7"}), dir_rootfs(), false, false, false);
  start("seven");
  EXPECT_EQ(wait("seven").exit_status(), 7u);
  remove("seven");

  create("sleeper", make_spec({"sleep", "1000"}), dir_rootfs(), false, false, false);
  start("sleeper");
  EXPECT_EQ(state("sleeper").status(), v1::PROCESS_STATUS_RUNNING);
  EXPECT_EQ(code_of([&] { remove("sleeper"); }), ttrpc::Code::kFailedPrecondition);
  signal("sleeper", SIGKILL);
  EXPECT_EQ(wait("sleeper").exit_status(), 137u);
  EXPECT_EQ(code_of([&] { signal("sleeper", SIGTERM); }), ttrpc::Code::kNotFound);
  remove("sleeper");
}

TEST_F(AgentHostTest, ExecRunsInsideTheRunningContainer) {
  create("box", make_spec({"sleep", "1000"}), dir_rootfs(), false, false, false);
  start("box");
  exec("box", "e1", {"sh", "-c", "hostname; echo oops >&2; exit 3"}, false, true, true);
  EXPECT_EQ(code_of([&] { exec("box", "e1", {"true"}, false, false, false); }),
            ttrpc::Code::kAlreadyExists);
  auto out = client_->open_stream("box", "e1", StreamKind::kStdout);
  auto err = client_->open_stream("box", "e1", StreamKind::kStderr);
  EXPECT_EQ(state("box", "e1").status(), v1::PROCESS_STATUS_CREATED);
  EXPECT_GT(start("box", "e1"), 0u);
  EXPECT_EQ(read_to_eof(out.get()), "agent-test\n");
  EXPECT_EQ(read_to_eof(err.get()), "oops\n");
  EXPECT_EQ(wait("box", "e1").exit_status(), 3u);
  EXPECT_EQ(remove("box", "e1").exit_status(), 3u);
  EXPECT_EQ(code_of([&] { state("box", "e1"); }), ttrpc::Code::kNotFound);
  // The init was not disturbed.
  EXPECT_EQ(state("box").status(), v1::PROCESS_STATUS_RUNNING);
  signal("box", SIGKILL);
  wait("box");
  remove("box");
}

TEST_F(AgentHostTest, StdinRoundTripsThroughCat) {
  auto st = create("cat", make_spec({"cat"}), dir_rootfs(), true, true, false);
  start("cat");
  write_all(st.in.get(), "ping\n");
  EXPECT_EQ(read_until(st.out.get(), "ping\n"), "ping\n");
  write_all(st.in.get(), "second line\n");
  EXPECT_EQ(read_until(st.out.get(), "second line\n"), "second line\n");
  // Half-close = EOF on cat's stdin: cat ends, stdout closes.
  ::shutdown(st.in.get(), SHUT_WR);
  EXPECT_EQ(read_to_eof(st.out.get()), "");
  EXPECT_EQ(wait("cat").exit_status(), 0u);
  remove("cat");
}

TEST_F(AgentHostTest, CloseStdinEndsTheInput) {
  auto st = create("cat2", make_spec({"cat"}), dir_rootfs(), true, true, false);
  start("cat2");
  write_all(st.in.get(), "abc\n");
  EXPECT_EQ(read_until(st.out.get(), "abc\n"), "abc\n");
  v1::CloseStdinRequest req;
  req.set_container_id("cat2");
  api().CloseStdin(req);
  EXPECT_EQ(read_to_eof(st.out.get()), "");
  EXPECT_EQ(wait("cat2").exit_status(), 0u);
  remove("cat2");
}

TEST_F(AgentHostTest, TerminalTakesItsInitialSizeAndResizes) {
  json spec = make_spec({"sh", "-c", "stty size; read line; stty size"});
  auto st = create("tty", spec, dir_rootfs(), true, true, false, true, 80, 24);
  start("tty");
  EXPECT_NE(read_until(st.out.get(), "24 80").find("24 80"), std::string::npos);
  v1::ResizePtyRequest resize;
  resize.set_container_id("tty");
  resize.set_width(132);
  resize.set_height(43);
  api().ResizePty(resize);
  write_all(st.in.get(), "go\n");
  EXPECT_NE(read_until(st.out.get(), "43 132").find("43 132"), std::string::npos);
  read_to_eof(st.out.get());
  EXPECT_EQ(wait("tty").exit_status(), 0u);
  remove("tty");
}

// `ctr run -t` from some terminals sends 0x0. It is applied as is, like
// containerd's runc shim does: the terminal then has no size.
TEST_F(AgentHostTest, ResizeToZeroByZeroIsAccepted) {
  // busybox `stty size` reports a 0x0 terminal as an error on stdin ("stty:
  // standard input") where it prints "ROWS COLS" for a sized one.
  json spec = make_spec({"sh", "-c", "stty size; read a; stty size; read b; stty size"});
  auto st = create("tty0", spec, dir_rootfs(), true, true, false, true, 80, 24);
  start("tty0");
  EXPECT_NE(read_until(st.out.get(), "24 80").find("24 80"), std::string::npos);
  v1::ResizePtyRequest resize;
  resize.set_container_id("tty0");
  resize.set_width(0);
  resize.set_height(0);
  EXPECT_EQ(code_of([&] { api().ResizePty(resize); }), ttrpc::Code::kOk);
  write_all(st.in.get(), "go\n");
  std::string zero = read_until(st.out.get(), "stty: standard input");
  EXPECT_EQ(zero.find("24 80"), std::string::npos) << "the size did not change: " << zero;
  resize.set_width(70000);  // more than a winsize holds
  EXPECT_EQ(code_of([&] { api().ResizePty(resize); }), ttrpc::Code::kInvalidArgument);
  resize.set_width(100);
  resize.set_height(30);
  api().ResizePty(resize);
  write_all(st.in.get(), "again\n");
  EXPECT_NE(read_until(st.out.get(), "30 100").find("30 100"), std::string::npos)
      << "the terminal still takes sizes after 0x0";
  read_to_eof(st.out.get());
  EXPECT_EQ(wait("tty0").exit_status(), 0u);
  remove("tty0");
}

TEST_F(AgentHostTest, ExecWithTerminalResizesAndSeesEofCharacter) {
  create("ttyhost", make_spec({"sleep", "1000"}), dir_rootfs(), false, false, false);
  start("ttyhost");
  // `read` first: crun 1.8 does not apply the initial size to exec
  // processes itself, the agent sizes the pty when crun hands it over, which
  // can be a moment after the process started (see README, Known limits).
  exec("ttyhost", "t1", {"sh", "-c", "read go; stty size; cat; echo cat-done; stty size"}, true,
       true, false, true, 100, 30);
  // Terminal exec: the streams wait for the pty that comes with start.
  auto in = client_->open_stream("ttyhost", "t1", StreamKind::kStdin);
  auto out = client_->open_stream("ttyhost", "t1", StreamKind::kStdout);
  start("ttyhost", "t1");
  write_all(in.get(), "go\n");
  read_until(out.get(), "30 100");
  v1::ResizePtyRequest resize;
  resize.set_container_id("ttyhost");
  resize.set_exec_id("t1");
  resize.set_width(60);
  resize.set_height(20);
  api().ResizePty(resize);
  write_all(in.get(), "typed\n");
  read_until(out.get(), "typed");
  ::shutdown(in.get(), SHUT_WR);  // becomes ^D: cat ends
  std::string rest = read_until(out.get(), "20 60");
  EXPECT_NE(rest.find("cat-done"), std::string::npos) << rest;
  EXPECT_EQ(wait("ttyhost", "t1").exit_status(), 0u);
  remove("ttyhost", "t1");
  signal("ttyhost", SIGKILL);
  wait("ttyhost");
  remove("ttyhost");
}

TEST_F(AgentHostTest, SignalAllKillsEveryProcessOfTheContainer) {
  create("many", make_spec({"sh", "-c", "sleep 1000 & sleep 1000 & wait"}), dir_rootfs(), false,
         false, false);
  start("many");
  v1::ListProcessesRequest ps;
  ps.set_container_id("many");
  std::vector<uint32_t> pids;
  for (int i = 0; i < 200 && pids.size() < 3; ++i) {
    pids.clear();
    auto listed = api().ListProcesses(ps);
    for (const auto& p : listed.processes()) pids.push_back(p.pid());
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(pids.size(), 3u) << "sh and two sleeps";
  exec("many", "x", {"sleep", "1000"}, false, false, false);
  start("many", "x");
  signal("many", SIGKILL, true);
  EXPECT_EQ(wait("many").exit_status(), 137u);
  EXPECT_EQ(wait("many", "x").exit_status(), 137u);
  for (uint32_t pid : pids)
    EXPECT_FALSE(fs::exists("/proc/" + std::to_string(pid))) << "pid " << pid << " lives";
  remove("many", "x");
  remove("many");
}

TEST_F(AgentHostTest, StatsReportCpuMemoryAndPids) {
  json spec = make_spec(
      {"sh", "-c",
       "i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; echo busy-done; sleep 1000 & wait"});
  spec["linux"]["resources"]["memory"]["limit"] = 256 * 1024 * 1024;
  auto st = create("stats", spec, dir_rootfs(), false, true, false);
  start("stats");
  read_until(st.out.get(), "busy-done");
  v1::ContainerStatsRequest req;
  req.set_container_id("stats");
  auto s = api().ContainerStats(req);
  for (int i = 0; i < 200 && s.pids().current() < 2; ++i) {  // `sleep` may not be forked yet
    std::this_thread::sleep_for(10ms);
    s = api().ContainerStats(req);
  }
  EXPECT_TRUE(s.cgroup_version() == 1 || s.cgroup_version() == 2);
  EXPECT_EQ(s.cgroup_path(), cgroup_parent_ + "/stats");
  EXPECT_GT(s.cpu().usage_usec(), 0u);
  EXPECT_GT(s.memory().usage(), 0u);
  EXPECT_EQ(s.memory().limit(), 256u * 1024 * 1024);
  EXPECT_FALSE(s.memory().stat().empty());
  EXPECT_GE(s.pids().current(), 2u);  // sh + sleep

  v1::UpdateContainerRequest up;
  up.set_container_id("stats");
  up.set_resources_json(json{{"memory", {{"limit", 128 * 1024 * 1024}}}}.dump());
  api().UpdateContainer(up);
  EXPECT_EQ(api().ContainerStats(req).memory().limit(), 128u * 1024 * 1024);

  signal("stats", SIGKILL);
  wait("stats");
  remove("stats");
}

// dd fills a 64 MiB buffer in one read(2): anonymous memory only, so the OOM
// kill comes at once (a pipeline that keeps faulting in its program's file
// pages can thrash at the limit instead; see the guest test).
TEST_F(AgentHostTest, OomKillIsReportedBeforeTheExit) {
  json spec = make_spec({"sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M count=1; echo survived"});
  spec["linux"]["resources"]["memory"] = {{"limit", 16 * 1024 * 1024}, {"swap", 16 * 1024 * 1024}};
  auto st = create("oom", spec, dir_rootfs(), false, true, false);
  start("oom");
  auto exit = wait("oom");
  EXPECT_TRUE(exit.oom_killed()) << "dd was OOM-killed, even though sh lived on";
  EXPECT_EQ(exit.exit_status(), 0u);
  EXPECT_EQ(read_to_eof(st.out.get()), "survived\n");

  // The event log: an OOM event for "oom", then the exit of its init.
  uint64_t after = 0, oom_seq = 0, exit_seq = 0;
  for (int i = 0; i < 100 && (!oom_seq || !exit_seq); ++i) {
    v1::WaitEventRequest req;
    req.set_after_sequence(after);
    req.set_timeout_ms(5000);
    auto ev = api().WaitEvent(req);
    ASSERT_NE(ev.sequence(), 0u) << "no further event";
    after = ev.sequence();
    if (ev.has_oom() && ev.oom().container_id() == "oom" && !oom_seq) oom_seq = ev.sequence();
    if (ev.has_exit() && ev.exit().container_id() == "oom" && ev.exit().exec_id().empty()) {
      exit_seq = ev.sequence();
      EXPECT_TRUE(ev.exit().oom_killed());
      EXPECT_EQ(ev.exit().exit_status(), exit.exit_status());
    }
  }
  ASSERT_NE(oom_seq, 0u);
  ASSERT_NE(exit_seq, 0u);
  EXPECT_LT(oom_seq, exit_seq);
  remove("oom");
}

// 11 MiB of tmpfs the cgroup cannot give back and an 8 MiB file read over
// and over in what is left of 16 MiB: every pass evicts the file and reads it
// back. Reclaim always frees something, so the kernel never OOM-kills; the
// agent reports the thrashing, and a kill still ends the wait.
TEST_F(AgentHostTest, ThrashingAtTheMemoryLimitIsLoggedAndTheExitStillComes) {
  json spec = make_spec({"sh", "-c",
                         "dd if=/dev/zero of=/big bs=1M count=8 conv=fsync 2>/dev/null && "
                         "head -c 11m /dev/zero > /dev/shm/hold && "
                         "while true; do cat /big > /dev/null; done"});
  spec["linux"]["resources"]["memory"] = {{"limit", 16 * 1024 * 1024}, {"swap", 16 * 1024 * 1024}};
  create("thrash", spec, ext4_rootfs(), false, false, false);
  start("thrash");
  bool reported = false;
  for (int i = 0; i < 300 && !reported; ++i) {
    std::this_thread::sleep_for(100ms);
    reported =
        agent_log().find("container thrash is thrashing at its memory limit") != std::string::npos;
  }
  ASSERT_TRUE(reported) << "no thrashing report";
  EXPECT_EQ(state("thrash").status(), v1::PROCESS_STATUS_RUNNING);
  v1::ContainerStatsRequest req;
  req.set_container_id("thrash");
  EXPECT_EQ(api().ContainerStats(req).memory().oom_kills(), 0u);
  signal("thrash", SIGKILL, true);
  auto exit = wait("thrash");
  EXPECT_EQ(exit.exit_status(), 137u);
  EXPECT_FALSE(exit.oom_killed());
  remove("thrash");
}

TEST_F(AgentHostTest, DeleteLeavesNoMountLoopDeviceCgroupOrBundle) {
  v1::Rootfs rootfs = ext4_rootfs();
  std::string image = rootfs.upper().device();
  auto st = create("disk", make_spec({"sh", "-c", "echo written > /persisted; cat /etc/hostname"}),
                   rootfs, false, true, false);
  std::string mountinfo = read_text("/proc/" + std::to_string(agent_.pid()) + "/mountinfo");
  EXPECT_NE(mountinfo.find("/containers/disk/rootfs"), std::string::npos) << "rootfs not mounted";
  EXPECT_NE(run_checked({"losetup", "-j", image}).find("/dev/loop"), std::string::npos);
  start("disk");
  EXPECT_EQ(read_to_eof(st.out.get()), "ember-test\n");
  EXPECT_EQ(wait("disk").exit_status(), 0u);
  std::string bundle = state("disk").bundle();
  remove("disk");

  mountinfo = read_text("/proc/" + std::to_string(agent_.pid()) + "/mountinfo");
  EXPECT_EQ(mountinfo.find("/containers/disk"), std::string::npos) << mountinfo;
  // Autoclear detaches the loop device at the last unmount (asynchronously).
  std::string loops;
  for (int i = 0; i < 100; ++i) {
    loops = run_checked({"losetup", "-j", image});
    if (loops.empty()) break;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(loops, "") << "loop device still attached";
  EXPECT_FALSE(fs::exists(bundle)) << bundle;
  EXPECT_FALSE(
      fs::exists(fs::path("/sys/fs/cgroup/memory") / (cgroup_parent_.substr(1) + "/disk")));
  // The container's write went to the image.
  EXPECT_NE(run_checked({"debugfs", "-R", "cat /persisted", image}).find("written"),
            std::string::npos);
}

TEST_F(AgentHostTest, OverlayOverErofsLowerWithExt4Upper) {
  EMBER_REQUIRE(fs::exists(rootfs_dir() / "rootfs.erofs"), "needs mkfs.erofs");
  EMBER_REQUIRE(read_text("/proc/filesystems").find("erofs") != std::string::npos,
                "needs EROFS in the kernel");
  fs::path upper = *dir_ / "upper.ext4";
  run_checked({"mkfs.ext4", "-q", "-F", upper.string(), "16M"});
  v1::Rootfs rootfs;
  rootfs.mutable_upper()->set_device(upper.string());
  rootfs.mutable_upper()->set_fstype("ext4");
  auto* lower = rootfs.add_lowers();
  lower->set_device((rootfs_dir() / "rootfs.erofs").string());
  lower->set_fstype("erofs");
  auto st = create(
      "ovl",
      make_spec({"sh", "-c", "echo layered > /new-file && cat /new-file && ls /bin/busybox"}),
      rootfs, false, true, false);
  start("ovl");
  EXPECT_EQ(read_to_eof(st.out.get()), "layered\n/bin/busybox\n");
  EXPECT_EQ(wait("ovl").exit_status(), 0u);
  remove("ovl");
  EXPECT_NE(run_checked({"debugfs", "-R", "cat /upper/new-file", upper.string()}).find("layered"),
            std::string::npos);
}

TEST_F(AgentHostTest, CriStyleSpecWithHostPathsIsAdaptedToTheGuest) {
  json spec = make_spec(
      {"sh", "-c",
       "grep -q ' /dev/shm tmpfs' /proc/mounts && echo shm-ok; ls /volume 2>&1; echo end"});
  for (auto& ns : spec["linux"]["namespaces"]) {
    std::string type = ns["type"];
    if (type == "network" || type == "ipc" || type == "uts")
      ns["path"] = "/proc/1/ns/" + std::string(type == "network" ? "net" : type);
  }
  spec["mounts"].push_back({{"destination", "/volume"},
                            {"type", "bind"},
                            {"source", "/var/lib/kubelet/pods/0000/volumes/does-not-exist"},
                            {"options", {"rbind", "rprivate", "rw"}}});
  spec["mounts"].push_back({{"destination", "/dev/shm"},
                            {"type", "bind"},
                            {"source", "/run/containerd/io.containerd.grpc.v1.cri/sandboxes/x/shm"},
                            {"options", {"rbind", "ro"}}});
  spec["hooks"] = {{"prestart", {{{"path", "/usr/bin/does-not-exist"}}}}};
  auto st = create("cri", spec, dir_rootfs(), false, true, false);
  start("cri");
  std::string out = read_to_eof(st.out.get());
  EXPECT_NE(out.find("shm-ok"), std::string::npos) << out;
  EXPECT_NE(out.find("No such file"), std::string::npos) << "host volume should be gone: " << out;
  EXPECT_EQ(wait("cri").exit_status(), 0u);
  remove("cri");
  EXPECT_NE(agent_log().find("dropped bind mount /var/lib/kubelet"), std::string::npos);
}

TEST_F(AgentHostTest, ErrorsCarryContainerdCodes) {
  EXPECT_EQ(code_of([&] { state("nope"); }), ttrpc::Code::kNotFound);
  EXPECT_EQ(code_of([&] { wait("nope"); }), ttrpc::Code::kNotFound);
  EXPECT_EQ(code_of([&] { start("nope"); }), ttrpc::Code::kNotFound);
  EXPECT_EQ(
      code_of([&] { create("../escape", make_spec({"true"}), dir_rootfs(), false, false, false); }),
      ttrpc::Code::kInvalidArgument);
  v1::CreateContainerRequest bad;
  bad.set_container_id("badspec");
  bad.set_spec_json("{not json");
  *bad.mutable_rootfs() = dir_rootfs();
  EXPECT_EQ(code_of([&] { api().CreateContainer(bad); }), ttrpc::Code::kInvalidArgument);
  // A failed create leaves nothing behind: the id is free again.
  EXPECT_EQ(code_of([&] { state("badspec"); }), ttrpc::Code::kNotFound);

  v1::Rootfs missing;
  missing.mutable_upper()->set_device("/nonexistent/image.ext4");
  EXPECT_EQ(code_of([&] { create("nodisk", make_spec({"true"}), missing, false, false, false); }),
            ttrpc::Code::kInternal);

  create("dup", make_spec({"true"}), dir_rootfs(), false, false, false);
  EXPECT_EQ(code_of([&] { create("dup", make_spec({"true"}), dir_rootfs(), false, false, false); }),
            ttrpc::Code::kAlreadyExists);
  // A stream that was not asked for, and a bad preamble.
  try {
    client_->open_stream("dup", "", StreamKind::kStdout);
    ADD_FAILURE() << "stdout stream accepted although not requested";
  } catch (const common::Error& e) {
    EXPECT_NE(std::string(e.what()).find("without stdout"), std::string::npos) << e.what();
  }
  common::UniqueFd raw = ttrpc::dial_unix(socket_);
  write_all(raw.get(), "EMBER-STREAM 1 dup\n");
  EXPECT_EQ(read_line(raw.get(), 5s, "reply").rfind("ERROR bad stream preamble", 0), 0u);
  remove("dup");
}

TEST_F(AgentHostTest, MissingExecutableFailsWithCrunsReason) {
  std::string message;
  try {
    create("noexe", make_spec({"/no/such/binary"}), dir_rootfs(), false, false, false);
    start("noexe");
  } catch (const ttrpc::StatusError& e) {
    message = e.what();
    EXPECT_EQ(e.code(), ttrpc::Code::kInternal);
  }
  EXPECT_NE(message.find("/no/such/binary"), std::string::npos)
      << "crun's reason should reach the host: " << message;
  // Whatever step failed, the container can be removed and leaves nothing.
  try {
    remove("noexe");
  } catch (const ttrpc::StatusError& e) {
    EXPECT_EQ(e.code(), ttrpc::Code::kNotFound) << e.what();
  }
}

TEST_F(AgentHostTest, CreatedContainerCanBeDeletedWithoutStarting) {
  create("unstarted", make_spec({"sleep", "1000"}), ext4_rootfs(), false, true, false);
  EXPECT_EQ(state("unstarted").status(), v1::PROCESS_STATUS_CREATED);
  remove("unstarted");
  EXPECT_EQ(code_of([&] { state("unstarted"); }), ttrpc::Code::kNotFound);
}

TEST_F(AgentHostTest, GuestInfoPingAndLog) {
  auto ping = api().Ping({});
  EXPECT_FALSE(ping.agent_version().empty());
  auto info = api().GuestInfo({});
  EXPECT_FALSE(info.kernel_release().empty());
  EXPECT_GT(info.memory_total_bytes(), 0u);
  EXPECT_GT(info.memory_available_bytes(), 0u);
  EXPECT_LE(info.memory_available_bytes(), info.memory_total_bytes());
  EXPECT_GE(info.cpus(), 1u);
  EXPECT_FALSE(info.pid1());
  EXPECT_EQ(info.containers(), 0u);
  EXPECT_GT(info.agent_rss_bytes(), 0u);
  std::cout << "[ agent    ] RSS " << info.agent_rss_bytes() / 1024 << " KiB (host mode, idle)\n";
  v1::ReadLogRequest req;
  auto log = api().ReadLog(req);
  EXPECT_NE(log.data().find("ready (host mode)"), std::string::npos) << log.data();
  EXPECT_EQ(log.next_offset(), log.offset() + log.data().size());
  req.set_offset(log.next_offset());
  EXPECT_LE(api().ReadLog(req).data().size(), 512u);  // only what was logged since
}

TEST_F(AgentHostTest, ShutdownRemovesEveryContainerAndStopsTheAgent) {
  create("s1", make_spec({"sleep", "1000"}), ext4_rootfs("s1.ext4"), false, false, false);
  start("s1");
  create("s2", make_spec({"sleep", "1000"}), dir_rootfs(), false, false, false);
  api().Shutdown({});
  auto status = agent_.wait_for(15000);
  ASSERT_TRUE(status.has_value()) << "agent still running after Shutdown";
  EXPECT_EQ(*status, 0) << common::describe_wait_status(*status);
  EXPECT_NE(agent_log().find("container s1 removed"), std::string::npos);
  std::string loops = run_checked({"losetup", "-j", (*dir_ / "s1.ext4").string()});
  for (int i = 0; i < 100 && !loops.empty(); ++i) {
    std::this_thread::sleep_for(20ms);
    loops = run_checked({"losetup", "-j", (*dir_ / "s1.ext4").string()});
  }
  EXPECT_EQ(loops, "");
}

}  // namespace
}  // namespace ember::agent
