// The harness itself: failures to start are reported, stuck guests are
// killed, QEMU never outlives its QemuGuest.
#include "tests/harness/qemu_guest.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <cerrno>

#include "tests/harness/require.h"

namespace ember::testing {
namespace {
using namespace std::chrono_literals;

TEST(QemuGuest, QemuThatCannotStartReportsItsErrorQuickly) {
  EMBER_REQUIRE(have_qemu(), "qemu-system-x86_64 not installed");
  QemuGuestConfig config;
  config.kernel = "/nonexistent/ember-vmlinux";
  QemuGuest guest(config);
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(guest.wait_for_line("EMBER-GUEST-READY", 60s));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 30s) << "waited for a QEMU that had exited";
  auto status = guest.wait_for_exit(30s);
  ASSERT_TRUE(status) << guest.describe();
  EXPECT_FALSE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << guest.describe();
  EXPECT_NE(guest.console_log().find("/nonexistent/ember-vmlinux"), std::string::npos) << guest.describe();
  EXPECT_FALSE(guest.boot_time());
}

TEST(QemuGuest, StuckGuestIsKilledByTheWatchdog) {
  EMBER_REQUIRE(have_qemu(), "qemu-system-x86_64 not installed");
  EMBER_REQUIRE(have_smoke_image(), "guest image missing: build the guest-image target");
  QemuGuestConfig config = QemuGuestConfig::smoke();
  config.extra_cmdline = "ember.smoke=hang";
  QemuGuest guest(config);
  ASSERT_TRUE(guest.wait_for_line("^EMBER-GUEST-HANG", 120s)) << guest.describe();
  EXPECT_FALSE(guest.wait_for_exit(500ms)) << "a hanging guest exited by itself";
  guest.set_timeout(100ms);
  auto status = guest.wait_for_exit(30s);
  ASSERT_TRUE(status) << guest.describe();
  EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL) << guest.describe();
  EXPECT_TRUE(guest.timed_out());
  EXPECT_NE(guest.describe().find("watchdog"), std::string::npos) << guest.describe();
}

TEST(QemuGuest, DestroyingTheGuestKillsAndReapsQemu) {
  EMBER_REQUIRE(have_qemu(), "qemu-system-x86_64 not installed");
  EMBER_REQUIRE(have_smoke_image(), "guest image missing: build the guest-image target");
  pid_t pid;
  {
    QemuGuestConfig config = QemuGuestConfig::smoke();
    config.extra_cmdline = "ember.smoke=hang";
    QemuGuest guest(config);
    pid = guest.pid();
    ASSERT_GT(pid, 0);
    ASSERT_TRUE(guest.wait_for_line("^EMBER-GUEST-HANG", 120s)) << guest.describe();
    EXPECT_TRUE(guest.running());
  }
  // Reaped, not just killed: a zombie would still answer kill(pid, 0).
  EXPECT_EQ(::kill(pid, 0), -1);
  EXPECT_EQ(errno, ESRCH);
}

// vhost-user backends map guest RAM: it must be a shared memfd.
TEST(QemuGuest, GuestWithSharedMemfdMemoryBoots) {
  EMBER_REQUIRE(have_qemu(), "qemu-system-x86_64 not installed");
  EMBER_REQUIRE(have_smoke_image(), "guest image missing: build the guest-image target");
  QemuGuestConfig config = QemuGuestConfig::smoke();
  config.shared_memory = true;
  config.memory_mib = 192;
  config.vcpus = 2;
  QemuGuest guest(config);
  ASSERT_TRUE(guest.wait_for_line("^EMBER-GUEST-DONE errors=0", 120s)) << guest.describe();
  auto status = guest.wait_for_exit(60s);
  ASSERT_TRUE(status) << guest.describe();
  EXPECT_EQ(*status, 0) << guest.describe();
}

}  // namespace
}  // namespace ember::testing
