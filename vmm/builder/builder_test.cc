// What the builder decides before touching KVM: command line, validation,
// device order and errors. (Booting is covered by tests/integration.)
#include "vmm/builder/builder.h"

#include <gtest/gtest.h>

#include "vmm/common/error.h"

namespace ember::vmm {
namespace {

VmResources with_kernel() {
  VmResources r;
  r.boot_source = BootSourceConfig{"/nonexistent/vmlinux", std::nullopt, std::nullopt};
  return r;
}

DriveConfig drive(const std::string& id, bool root, bool ro, std::optional<std::string> partuuid = std::nullopt) {
  DriveConfig d;
  d.drive_id = id;
  d.is_root_device = root;
  d.is_read_only = ro;
  d.partuuid = std::move(partuuid);
  d.path_on_host = "/nonexistent/" + id;
  return d;
}

TEST(BaseCmdline, DefaultsToFirecrackersBootArgs) {
  EXPECT_EQ(base_cmdline(with_kernel()), kDefaultBootArgs);
}

TEST(BaseCmdline, UsesTheGivenBootArgs) {
  VmResources r = with_kernel();
  r.boot_source->boot_args = "console=ttyS0 quiet";
  EXPECT_EQ(base_cmdline(r), "console=ttyS0 quiet");
}

TEST(BaseCmdline, RootDriveAppendsRootDevice) {
  VmResources r = with_kernel();
  r.boot_source->boot_args = "console=ttyS0";
  r.drives = {drive("rootfs", true, true)};
  EXPECT_EQ(base_cmdline(r), "console=ttyS0 root=/dev/vda ro");
  r.drives = {drive("rootfs", true, false)};
  EXPECT_EQ(base_cmdline(r), "console=ttyS0 root=/dev/vda rw");
  r.drives = {drive("scratch", false, false), drive("rootfs", true, false, "0eaa91a0-01")};
  EXPECT_EQ(base_cmdline(r), "console=ttyS0 root=PARTUUID=0eaa91a0-01 rw");
}

TEST(BaseCmdline, NonRootDrivesAddNothing) {
  VmResources r = with_kernel();
  r.boot_source->boot_args = "a=b";
  r.drives = {drive("data", false, false)};
  EXPECT_EQ(base_cmdline(r), "a=b");
}

TEST(BaseCmdline, TooLongBootArgsAreAnError) {
  VmResources r = with_kernel();
  r.boot_source->boot_args = std::string(2048, 'x');
  EXPECT_THROW(base_cmdline(r), common::Error);
}

void expect_build_error(const VmResources& r, const std::string& text) {
  Logger logger;
  LoggerConfig off;
  off.level = LogLevel::kOff;
  logger.configure(off);
  Metrics metrics;
  try {
    build_microvm(r, logger, metrics);
    FAIL() << "built a VM that should have been refused";
  } catch (const common::Error& e) {
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
  }
}

TEST(BuildMicrovm, RefusesBadMachineConfigurationBeforeTouchingKvm) {
  expect_build_error(VmResources{}, "Cannot start microvm without kernel configuration.");
  VmResources r = with_kernel();
  r.machine.vcpu_count = 0;
  expect_build_error(r, "vcpu_count 0");
  r.machine.vcpu_count = 33;
  expect_build_error(r, "vcpu_count 33");
  r.machine.vcpu_count = 1;
  r.machine.mem_size_mib = 0;
  expect_build_error(r, "mem_size_mib 0");
}

TEST(BuildMicrovm, DeviceErrorsNameTheDevice) {
  VmResources r = with_kernel();
  r.drives = {drive("data", false, false), drive("rootfs", true, false)};
  // Root drives are created first (Firecracker's bus order).
  expect_build_error(r, "drive \"rootfs\"");
}

}  // namespace
}  // namespace ember::vmm
