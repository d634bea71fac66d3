#include "vmm/common/child_process.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmm/common/error.h"
#include "vmm/common/unique_fd.h"

namespace ember::common {
namespace {

TEST(ChildProcess, ReportsExitStatusAndOutput) {
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  UniqueFd r(p[0]), w(p[1]);
  SpawnOptions o;
  o.argv = {"sh", "-c", "echo hi; exit 3"};
  o.stdout_fd = w.get();
  auto child = ChildProcess::spawn(o);
  w.reset();
  char buf[16] = {};
  ASSERT_EQ(read(r.get(), buf, sizeof buf), 3);
  EXPECT_STREQ(buf, "hi\n");
  int status = child.wait();
  EXPECT_EQ(describe_wait_status(status), "exited 3");
}

TEST(ChildProcess, MissingBinaryIsAClearError) {
  SpawnOptions o;
  o.argv = {"/nonexistent/ember-binary"};
  try {
    ChildProcess::spawn(o);
    FAIL() << "spawn should have thrown";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "spawn /nonexistent/ember-binary: exec: No such file or directory");
  }
}

TEST(ChildProcess, KillsChildWhenHandleIsDropped) {
  pid_t pid;
  {
    SpawnOptions o;
    o.argv = {"sleep", "100"};
    auto child = ChildProcess::spawn(o);
    pid = child.pid();
  }
  EXPECT_NE(kill(pid, 0), 0);  // reaped: no such process
}

}  // namespace
}  // namespace ember::common
