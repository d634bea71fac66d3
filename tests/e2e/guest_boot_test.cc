// The guest image (ember's kernel + the smoke initramfs) boots under QEMU
// microvm, finds its virtio devices, and shuts the VM down cleanly.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <fstream>
#include <iostream>

#include "tests/harness/disk_image.h"
#include "tests/harness/qemu_guest.h"
#include "tests/harness/require.h"
#include "tests/harness/temp_dir.h"

namespace ember::testing {
namespace {
using namespace std::chrono_literals;
namespace fs = std::filesystem;

// Under TCG on a loaded 2-core machine a boot takes seconds; these limits
// only catch a guest that is stuck.
constexpr auto kBootTimeout = 120s;
constexpr auto kExitTimeout = 60s;

#define REQUIRE_GUEST()                                                                \
  do {                                                                                 \
    EMBER_REQUIRE(have_qemu(), "qemu-system-x86_64 not installed");                    \
    EMBER_REQUIRE(have_smoke_image(),                                                  \
                  "guest image missing in " + guest_image_dir().string() +             \
                      ": build the guest-image target");                               \
  } while (0)

void expect_clean_exit(QemuGuest& guest) {
  ASSERT_TRUE(guest.wait_for_line("^EMBER-GUEST-DONE errors=0$", kExitTimeout)) << guest.describe();
  EXPECT_TRUE(guest.lines_matching("EMBER-GUEST-ERROR").empty()) << guest.describe();
  auto status = guest.wait_for_exit(kExitTimeout);
  ASSERT_TRUE(status) << "guest did not shut down\n" << guest.describe();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
      << "QEMU " << common::describe_wait_status(*status) << "\n" << guest.describe();
}

TEST(GuestBoot, GuestBootsAndFindsVirtioBlockDrive) {
  REQUIRE_GUEST();
  TempDir dir;
  make_raw_image(dir / "disk.raw", 8 << 20);
  QemuGuestConfig config = QemuGuestConfig::smoke();
  config.drives.push_back({dir / "disk.raw"});
  QemuGuest guest(config);

  ASSERT_TRUE(guest.wait_for_line("^EMBER-GUEST-READY uptime=[0-9.]+$", kBootTimeout)) << guest.describe();
  auto boot = guest.boot_time();
  ASSERT_TRUE(boot);
  std::cout << "[ boot     ] " << boot->count() << " ms from QEMU spawn to EMBER-GUEST-READY ("
            << select_accelerator() << ", " << *guest.wait_for_line("^EMBER-GUEST-READY", 0s) << ")\n";

  // virtio 1.2 §5.2: device id 2 is a block device; the first disk is vda.
  auto block = guest.wait_for_line("^EMBER-VIRTIO virtio[0-9]+ device=0x0002 driver=virtio_blk .*block=vda",
                                   kExitTimeout);
  ASSERT_TRUE(block) << guest.describe();
  // VIRTIO_F_VERSION_1 (bit 32) is negotiated only over the modern transport.
  std::smatch features;
  ASSERT_TRUE(std::regex_search(*block, features, std::regex("features=0x([0-9a-f]+)"))) << *block;
  EXPECT_TRUE(std::stoull(features[1].str(), nullptr, 16) & (1ull << 32)) << "no VIRTIO_F_VERSION_1: " << *block;
  expect_clean_exit(guest);
}

TEST(GuestBoot, GuestReadsAndWritesExt4Drive) {
  REQUIRE_GUEST();
  EMBER_REQUIRE(have_e2fsprogs(), "mkfs.ext4/debugfs (e2fsprogs) not installed");
  TempDir dir;
  fs::create_directories(dir / "root");
  std::ofstream(dir / "root/hello.txt") << "hello from the host\n";
  make_ext4_image(dir / "rootfs.ext4", dir / "root", 16 << 20);
  QemuGuestConfig config = QemuGuestConfig::smoke();
  config.extra_cmdline = "ember.smoke=ext4-rw";
  config.drives.push_back({dir / "rootfs.ext4"});
  QemuGuest guest(config);

  ASSERT_TRUE(guest.wait_for_line("^EMBER-EXT4 read=hello from the host$", kBootTimeout)) << guest.describe();
  ASSERT_TRUE(guest.wait_for_line("^EMBER-EXT4 wrote=", kExitTimeout)) << guest.describe();
  expect_clean_exit(guest);
  EXPECT_EQ(read_file_from_ext4(dir / "rootfs.ext4", "/from-guest.txt").rfind("written by ember-guest-smoke", 0), 0u);
}

// crun sets memory.max, pids.max and cpu.max: the kernel must offer those
// controllers on the cgroup v2 hierarchy and let them be delegated.
TEST(GuestBoot, GuestKernelDelegatesCgroupV2ControllersCrunNeeds) {
  REQUIRE_GUEST();
  QemuGuestConfig config = QemuGuestConfig::smoke();
  config.extra_cmdline = "ember.smoke=cgroup";
  QemuGuest guest(config);
  auto controllers = guest.wait_for_line("^EMBER-CGROUP controllers=", kBootTimeout);
  ASSERT_TRUE(controllers) << guest.describe();
  for (const char* c : {"cpuset", "cpu", "memory", "pids"}) {
    EXPECT_TRUE(std::regex_search(*controllers, std::regex(std::string("[= ]") + c + "( |$)"))) << c << ": " << *controllers;
  }
  auto delegated = guest.wait_for_line("^EMBER-CGROUP subtree_control=", kExitTimeout);
  ASSERT_TRUE(delegated) << guest.describe();
  for (const char* c : {"cpu", "memory", "pids"}) {
    EXPECT_TRUE(std::regex_search(*delegated, std::regex(std::string("[= ]") + c + "( |$)"))) << c << ": " << *delegated;
  }
  expect_clean_exit(guest);
}

// ember-vmm also loads bzImage (Linux boot protocol 64-bit entry).
TEST(GuestBoot, BzImageBootsToo) {
  REQUIRE_GUEST();
  QemuGuestConfig config = QemuGuestConfig::smoke();
  config.kernel = guest_image_dir() / "bzImage";
  QemuGuest guest(config);
  ASSERT_TRUE(guest.wait_for_line("^EMBER-GUEST-READY uptime=", kBootTimeout)) << guest.describe();
  std::cout << "[ boot     ] bzImage: " << guest.boot_time()->count() << " ms to EMBER-GUEST-READY\n";
  expect_clean_exit(guest);
}

}  // namespace
}  // namespace ember::testing
