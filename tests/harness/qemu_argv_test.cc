// What QemuGuest asks QEMU for, checked without running QEMU.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>

#include "tests/harness/qemu_guest.h"

namespace ember::testing {
namespace {

// The value following `option` in argv, or "" when absent.
std::string value_of(const std::vector<std::string>& argv, const std::string& option, size_t nth = 0) {
  for (size_t i = 0; i + 1 < argv.size(); ++i) {
    if (argv[i] == option && nth-- == 0) return argv[i + 1];
  }
  return "";
}

QemuGuestConfig base() {
  QemuGuestConfig c;
  c.kernel = "/k/vmlinux";
  c.initrd = "/k/initrd.cpio";
  return c;
}

TEST(QemuArgv, ModernMicrovmWithCommandLineDevicesAndSerialConsole) {
  auto argv = qemu_argv(base(), "tcg");
  EXPECT_EQ(argv.front(), "qemu-system-x86_64");
  EXPECT_EQ(value_of(argv, "-M"), "microvm,acpi=off");
  EXPECT_EQ(value_of(argv, "-accel"), "tcg");
  EXPECT_EQ(value_of(argv, "-global"), "virtio-mmio.force-legacy=false");
  EXPECT_EQ(value_of(argv, "-kernel"), "/k/vmlinux");
  EXPECT_EQ(value_of(argv, "-initrd"), "/k/initrd.cpio");
  EXPECT_EQ(value_of(argv, "-serial"), "chardev:console");
  for (const char* flag : {"-nodefaults", "-no-user-config", "-nographic", "-no-reboot"}) {
    EXPECT_NE(std::find(argv.begin(), argv.end(), flag), argv.end()) << flag;
  }
  EXPECT_EQ(value_of(argv, "-append"), "console=ttyS0 reboot=t panic=-1 noapictimer");
}

TEST(QemuArgv, KvmUsesHostCpuAndKeepsApicTimer) {
  QemuGuestConfig c = base();
  c.extra_cmdline = "ember.smoke=hang";
  auto argv = qemu_argv(c, "kvm");
  EXPECT_EQ(value_of(argv, "-cpu"), "host");
  EXPECT_EQ(value_of(argv, "-append"), "console=ttyS0 reboot=t panic=-1 ember.smoke=hang");
}

TEST(QemuArgv, DrivesBecomeVirtioBlockDevicesInOrder) {
  QemuGuestConfig c = base();
  c.drives = {{"/d/a,b.img", false}, {"/d/ro.img", true}};
  auto argv = qemu_argv(c, "tcg");
  // A comma in a QEMU option value is written twice.
  EXPECT_EQ(value_of(argv, "-drive", 0), "id=drive0,file=/d/a,,b.img,format=raw,if=none");
  EXPECT_EQ(value_of(argv, "-device", 0), "virtio-blk-device,drive=drive0");
  EXPECT_EQ(value_of(argv, "-drive", 1), "id=drive1,file=/d/ro.img,format=raw,if=none,readonly=on");
  EXPECT_EQ(value_of(argv, "-device", 1), "virtio-blk-device,drive=drive1");
}

TEST(QemuArgv, SharedMemoryIsAMemfdBackendAndExtraArgsComeLast) {
  QemuGuestConfig c = base();
  c.shared_memory = true;
  c.memory_mib = 384;
  c.vcpus = 2;
  c.extra_args = {"-chardev", "socket,id=vu,path=/s.sock", "-device", "vhost-user-vsock-device,chardev=vu"};
  auto argv = qemu_argv(c, "tcg");
  EXPECT_EQ(value_of(argv, "-M"), "microvm,acpi=off,memory-backend=mem");
  EXPECT_EQ(value_of(argv, "-object"), "memory-backend-memfd,id=mem,size=384M,share=on");
  EXPECT_EQ(value_of(argv, "-m"), "384M");
  EXPECT_EQ(value_of(argv, "-smp"), "2");
  ASSERT_GE(argv.size(), 4u);
  EXPECT_EQ(argv[argv.size() - 1], "vhost-user-vsock-device,chardev=vu");
  EXPECT_EQ(argv[argv.size() - 3], "socket,id=vu,path=/s.sock");
}

TEST(KvmCheck, MissingOrFailingCheckerMeansNoKvm) {
  EXPECT_FALSE(kvm_runs_linux_guests("/nonexistent/ember-kvm-check"));
  EXPECT_FALSE(kvm_runs_linux_guests("/bin/false"));
}

TEST(KvmCheck, PassingCheckerMeansKvmWhenDevKvmIsUsable) {
  EXPECT_EQ(kvm_runs_linux_guests("/bin/true"), ::access("/dev/kvm", R_OK | W_OK) == 0);
}

}  // namespace
}  // namespace ember::testing
