#include "tests/harness/command.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include "vmm/common/error.h"

namespace ember::testing {
namespace {

TEST(RunCommand, CapturesStdoutAndStderrAndStatus) {
  CommandResult r = run_command({"sh", "-c", "echo out; echo err >&2; exit 3"});
  EXPECT_FALSE(r.ok());
  ASSERT_TRUE(WIFEXITED(r.status));
  EXPECT_EQ(WEXITSTATUS(r.status), 3);
  EXPECT_NE(r.output.find("out\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("err\n"), std::string::npos) << r.output;
}

TEST(RunCommand, KillsAProgramThatOutlivesItsTimeout) {
  auto start = std::chrono::steady_clock::now();
  CommandResult r = run_command({"sleep", "30"}, std::chrono::milliseconds(200));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  ASSERT_TRUE(WIFSIGNALED(r.status)) << r.describe();
  EXPECT_NE(r.output.find("killed sleep"), std::string::npos) << r.output;
}

TEST(RunChecked, FailureNamesTheCommandAndItsOutput) {
  try {
    run_checked({"sh", "-c", "echo broken; exit 1"});
    FAIL() << "expected an error";
  } catch (const common::Error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("sh -c"), std::string::npos) << what;
    EXPECT_NE(what.find("exited 1"), std::string::npos) << what;
    EXPECT_NE(what.find("broken"), std::string::npos) << what;
  }
}

TEST(RunCommand, MissingProgramIsAnError) {
  EXPECT_THROW(run_command({"/nonexistent/ember-no-such-program"}), common::Error);
}

TEST(FindProgram, FindsShellAndRejectsMissing) {
  EXPECT_FALSE(find_program("sh").empty());
  EXPECT_TRUE(find_program("ember-no-such-program").empty());
}

}  // namespace
}  // namespace ember::testing
