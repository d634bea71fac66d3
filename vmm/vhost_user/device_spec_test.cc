#include "vmm/vhost_user/device_spec.h"

#include <gtest/gtest.h>

#include "vmm/common/error.h"

namespace ember::vmm::vhost_user {
namespace {

std::string error_of(const std::string& spec) {
  try {
    parse_device_spec(spec);
  } catch (const common::Error& e) {
    return e.what();
  }
  return "(accepted)";
}

TEST(DeviceSpec, BlockWithPathIdReadOnlyAndCache) {
  DeviceSpec spec =
      parse_device_spec("blk,path=/img/rootfs.ext4,readonly,id=rootfs,cache=writeback");
  EXPECT_EQ(spec.type, virtio::DeviceType::kBlock);
  EXPECT_EQ(spec.drive.path_on_host, "/img/rootfs.ext4");
  EXPECT_TRUE(spec.drive.is_read_only);
  EXPECT_EQ(spec.drive.drive_id, "rootfs");
  EXPECT_EQ(spec.drive.cache_type, CacheType::kWriteback);
}

TEST(DeviceSpec, BlockDefaultsToWritableUnsafeCache) {
  DeviceSpec spec = parse_device_spec("blk,path=/x.img");
  EXPECT_FALSE(spec.drive.is_read_only);
  EXPECT_EQ(spec.drive.cache_type, CacheType::kUnsafe);
  EXPECT_EQ(spec.drive.drive_id, "blk");
  EXPECT_FALSE(parse_device_spec("blk,path=/x.img,readonly=off").drive.is_read_only);
  EXPECT_EQ(spec.drive.io_engine, IoEngine::kSync);
  EXPECT_EQ(parse_device_spec("blk,path=/x.img,engine=async").drive.io_engine, IoEngine::kAsync);
}

TEST(DeviceSpec, VsockWithCidAndUdsPath) {
  DeviceSpec spec = parse_device_spec("vsock,guest-cid=42,uds-path=/run/v.sock");
  EXPECT_EQ(spec.type, virtio::DeviceType::kVsock);
  EXPECT_EQ(spec.vsock.guest_cid, 42u);
  EXPECT_EQ(spec.vsock.uds_path, "/run/v.sock");
}

TEST(DeviceSpec, Rng) { EXPECT_EQ(parse_device_spec("rng").type, virtio::DeviceType::kRng); }

TEST(DeviceSpec, MistakesAreNamed) {
  EXPECT_NE(error_of("disk,path=/x").find("unknown device type \"disk\""), std::string::npos);
  EXPECT_NE(error_of("blk").find("blk needs path=FILE"), std::string::npos);
  EXPECT_NE(error_of("blk,path=").find("option \"path\" needs a value"), std::string::npos);
  EXPECT_NE(error_of("blk,path=/x,size=3").find("option \"size\" does not apply to blk"),
            std::string::npos);
  EXPECT_NE(error_of("blk,path=/x,cache=none").find("cache must be unsafe or writeback"),
            std::string::npos);
  EXPECT_NE(error_of("blk,path=/x,engine=aio").find("engine must be sync or async, not \"aio\""),
            std::string::npos);
  EXPECT_NE(error_of("vsock,uds-path=/v").find("vsock needs guest-cid"), std::string::npos);
  EXPECT_NE(error_of("vsock,guest-cid=2,uds-path=/v").find("guest-cid must be a number from 3"),
            std::string::npos);
  EXPECT_NE(error_of("vsock,guest-cid=3x,uds-path=/v").find("guest-cid must be"),
            std::string::npos);
  EXPECT_NE(error_of("vsock,guest-cid=3").find("vsock needs uds-path"), std::string::npos);
  EXPECT_NE(error_of("rng,path=/x").find("does not apply to rng"), std::string::npos);
}

}  // namespace
}  // namespace ember::vmm::vhost_user
