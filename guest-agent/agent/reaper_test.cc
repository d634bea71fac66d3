#include "guest-agent/agent/reaper.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <optional>
#include <vector>

#include "vmm/common/child_process.h"

namespace ember::agent {
namespace {

pid_t spawn(const std::vector<std::string>& argv) {
  common::SpawnOptions o;
  o.argv = argv;
  return common::ChildProcess::spawn(o).release();
}

void run_until(common::EventLoop& loop, const std::function<bool()>& done) {
  for (int i = 0; i < 500 && !done(); ++i) loop.run_once(10);
}

TEST(Reaper, ReportsTheExitOfAWatchedChild) {
  Reaper::block_child_signal();
  common::EventLoop loop;
  Reaper reaper(loop);
  uint64_t since = reaper.mark();
  pid_t pid = spawn({"sh", "-c", "exit 5"});
  std::optional<int> status;
  reaper.watch(
      pid, [&](int s) { status = s; }, since);
  run_until(loop, [&] { return status.has_value(); });
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 5);
}

TEST(Reaper, ExitBeforeTheWatchIsKeptForALaterWatcher) {
  Reaper::block_child_signal();
  common::EventLoop loop;
  Reaper reaper(loop);
  uint64_t since = reaper.mark();
  pid_t pid = spawn({"true"});
  // Reap it before anyone watches (as when crun exec's process exits before
  // crun wrote its pid file).
  for (int i = 0; i < 500 && reaper.mark() == since; ++i) loop.run_once(10);
  ASSERT_GT(reaper.mark(), since);
  std::optional<int> status;
  reaper.watch(
      pid, [&](int s) { status = s; }, since);
  run_until(loop, [&] { return status.has_value(); });
  ASSERT_TRUE(status);
  EXPECT_EQ(WEXITSTATUS(*status), 0);

  // A status reaped before the mark is not handed to a watcher of a reused pid.
  std::optional<int> stale;
  uint64_t before = reaper.mark();
  pid_t other = spawn({"sh", "-c", "exit 3"});
  for (int i = 0; i < 500 && reaper.mark() == before; ++i) loop.run_once(10);
  reaper.watch(
      other, [&](int s) { stale = s; }, reaper.mark());
  run_until(loop, [&] { return stale.has_value(); });
  // (Here the pid was not reused, so it is no child of ours any more: the
  // watcher learns the exit is lost instead of waiting forever.)
  ASSERT_TRUE(stale);
  EXPECT_NE(*stale, 3 << 8) << "the stale status of the earlier process";
  EXPECT_EQ(*stale, Reaper::kLostStatus);
}

TEST(Reaper, AnExitTakenElsewhereIsReportedLostNotAwaitedForever) {
  Reaper::block_child_signal();
  common::EventLoop loop;
  Reaper reaper(loop);
  std::vector<pid_t> lost_pids;
  reaper.set_lost_handler([&](pid_t pid) { lost_pids.push_back(pid); });
  // A running child: watched normally, the audit leaves it alone.
  pid_t sleeper = spawn({"sleep", "1000"});
  std::optional<int> sleeper_status;
  reaper.watch(
      sleeper, [&](int s) { sleeper_status = s; }, reaper.mark());
  // Another child whose status someone else takes (a stray waitpid), so the
  // reaper never sees it.
  pid_t victim = spawn({"sleep", "1000"});
  std::optional<int> victim_status;
  reaper.watch(
      victim, [&](int s) { victim_status = s; }, reaper.mark());
  ::kill(victim, SIGKILL);
  int raw = 0;
  ASSERT_EQ(::waitpid(victim, &raw, 0), victim);
  loop.run_once(10);
  EXPECT_FALSE(victim_status) << "nothing reported before the audit";

  EXPECT_EQ(reaper.audit(), std::vector<pid_t>{victim});
  run_until(loop, [&] { return victim_status.has_value(); });
  ASSERT_TRUE(victim_status);
  EXPECT_EQ(*victim_status, Reaper::kLostStatus);
  EXPECT_EQ(lost_pids, std::vector<pid_t>{victim});
  EXPECT_FALSE(sleeper_status) << "a running child is not lost";

  // The audit reaps what already exited first: the real status, not "lost".
  ::kill(sleeper, SIGKILL);
  for (int i = 0; i < 500; ++i) {  // until it is a zombie (not reaped: WNOWAIT)
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(sleeper), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        info.si_pid == sleeper)
      break;
    ::usleep(2000);
  }
  EXPECT_TRUE(reaper.audit().empty());
  run_until(loop, [&] { return sleeper_status.has_value(); });
  ASSERT_TRUE(sleeper_status);
  EXPECT_TRUE(WIFSIGNALED(*sleeper_status));
  EXPECT_EQ(lost_pids.size(), 1u);
}

// A live process that is not ours may be an orphan on its way to the agent:
// lost only when it is still not ours at the next audit.
TEST(Reaper, ALiveProcessThatIsNoChildIsReportedLostAtTheSecondAudit) {
  Reaper::block_child_signal();
  common::EventLoop loop;
  Reaper reaper(loop);
  std::optional<int> status;
  reaper.watch(
      ::getppid(), [&](int s) { status = s; }, reaper.mark());
  loop.run_once(10);
  EXPECT_FALSE(status);
  EXPECT_TRUE(reaper.audit().empty());
  loop.run_once(10);
  EXPECT_FALSE(status);
  EXPECT_EQ(reaper.audit(), std::vector<pid_t>{::getppid()});
  run_until(loop, [&] { return status.has_value(); });
  ASSERT_TRUE(status);
  EXPECT_EQ(*status, Reaper::kLostStatus);
}

}  // namespace
}  // namespace ember::agent
