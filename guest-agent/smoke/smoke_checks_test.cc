// The smoke init's reports, computed over a fake /sys and /proc made of real
// files and symlinks laid out like the kernel's.
#include "guest-agent/smoke/smoke_checks.h"

#include <gtest/gtest.h>

#include <fstream>

#include "tests/harness/temp_dir.h"
#include "vmm/common/error.h"

namespace ember::agent::smoke {
namespace {
namespace fs = std::filesystem;
using ember::testing::TempDir;

void write(const fs::path& path, const std::string& content) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << content;
}

// /sys/bus/virtio/devices/<name> -> ../../../devices/<name>, with a driver link.
fs::path add_device(const fs::path& sys, const std::string& name, const std::string& id, const std::string& driver) {
  fs::path dev = sys / "devices/platform/virtio_mmio.0" / name;
  write(dev / "device", id + "\n");
  write(dev / "vendor", "0x554d4551\n");
  fs::create_directories(sys / "bus/virtio/devices");
  fs::create_directory_symlink(dev, sys / "bus/virtio/devices" / name);
  if (!driver.empty()) {
    fs::create_directories(sys / "bus/virtio/drivers" / driver);
    fs::create_directory_symlink(sys / "bus/virtio/drivers" / driver, dev / "driver");
  }
  return dev;
}

TEST(ListVirtioDevices, ReportsIdDriverAndBlockNameInIndexOrder) {
  TempDir root;
  fs::path sys = root / "sys";
  fs::path blk = add_device(sys, "virtio10", "0x0002", "virtio_blk");
  fs::create_directories(blk / "block/vdb");
  fs::path first = add_device(sys, "virtio2", "0x0002", "virtio_blk");
  fs::create_directories(first / "block/vda");
  // Feature bits 0 and 32 (VIRTIO_F_VERSION_1).
  write(first / "features", "1" + std::string(31, '0') + "1" + std::string(31, '0') + "\n");
  fs::path net = add_device(sys, "virtio3", "0x0001", "virtio_net");
  fs::create_directories(net / "net/eth0");
  add_device(sys, "virtio4", "0x0013", "");

  auto devices = list_virtio_devices(sys);
  ASSERT_EQ(devices.size(), 4u);
  EXPECT_EQ(format_virtio_line(devices[0]),
            "EMBER-VIRTIO virtio2 device=0x0002 driver=virtio_blk features=0x100000001 block=vda");
  EXPECT_EQ(format_virtio_line(devices[1]), "EMBER-VIRTIO virtio3 device=0x0001 driver=virtio_net features=0x0 net=eth0");
  EXPECT_EQ(format_virtio_line(devices[2]), "EMBER-VIRTIO virtio4 device=0x0013 driver=none features=0x0");
  EXPECT_EQ(devices[3].name, "virtio10");
  EXPECT_EQ(devices[3].block, "vdb");
}

TEST(ListVirtioDevices, NoVirtioBusMeansNoDevices) {
  TempDir root;
  EXPECT_TRUE(list_virtio_devices(root.path()).empty());
}

TEST(ListVirtioDevices, GarbageDeviceIdIsAnErrorNamingTheFile) {
  TempDir root;
  add_device(root.path(), "virtio0", "zz", "virtio_blk");
  try {
    list_virtio_devices(root.path());
    FAIL() << "expected an error";
  } catch (const common::Error& e) {
    EXPECT_NE(std::string(e.what()).find("virtio0/device"), std::string::npos) << e.what();
  }
}

TEST(ReadUptime, ReturnsFirstField) {
  TempDir root;
  write(root / "uptime", "0.53 0.41\n");
  EXPECT_EQ(read_uptime(root.path()), "0.53");
  write(root / "uptime", "garbage\n");
  EXPECT_THROW(read_uptime(root.path()), common::Error);
  EXPECT_THROW(read_uptime(root / "missing"), common::Error);
}

TEST(SmokeActions, ComeFromTheKernelCommandLine) {
  const std::vector<std::string> fallback = {"virtio"};
  EXPECT_EQ(smoke_actions("console=ttyS0 panic=-1\n", fallback), fallback);
  EXPECT_EQ(smoke_actions("console=ttyS0 ember.smoke=cgroup,ext4-rw quiet\n", fallback),
            (std::vector<std::string>{"cgroup", "ext4-rw"}));
  EXPECT_TRUE(smoke_actions("ember.smoke= quiet", fallback).empty());
  EXPECT_EQ(smoke_actions("ember.smoke=a ember.smoke=b", fallback), (std::vector<std::string>{"b"}));
  EXPECT_EQ(smoke_actions("xember.smoke=a", fallback), fallback);
}

}  // namespace
}  // namespace ember::agent::smoke
