#include "guest-agent/agent/reaper.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <optional>

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
  pid_t other = spawn({"true"});
  for (int i = 0; i < 500 && reaper.mark() == before; ++i) loop.run_once(10);
  reaper.watch(
      other, [&](int s) { stale = s; }, reaper.mark());
  loop.run_once(10);
  EXPECT_FALSE(stale);
  reaper.unwatch(other);
}

}  // namespace
}  // namespace ember::agent
