// The CRI subset names its gRPC services and encodes its messages like cri-api v1.
#include <gtest/gtest.h>

#include "cri/api.grpc.pb.h"

namespace {

std::string hex(const std::string& bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

TEST(CriProto, ServiceNamesMatchKubelet) {
  EXPECT_STREQ(runtime::v1::RuntimeService::service_full_name(), "runtime.v1.RuntimeService");
  EXPECT_STREQ(runtime::v1::ImageService::service_full_name(), "runtime.v1.ImageService");
}

TEST(CriProto, ExecSyncAndStatsFieldNumbers) {
  runtime::v1::ExecSyncRequest exec;
  exec.set_container_id("c");
  exec.add_cmd("ls");
  exec.set_timeout(5);
  // container_id=1, cmd=2, timeout=3
  EXPECT_EQ(hex(exec.SerializeAsString()),
            "0a0163"
            "12026c73"
            "1805");

  runtime::v1::ContainerStats stats;
  stats.mutable_cpu()->mutable_usage_core_nano_seconds()->set_value(7);
  stats.mutable_memory()->mutable_working_set_bytes()->set_value(9);
  // cpu=2 {usage_core_nano_seconds=2 {value=1}}; memory=3 {working_set_bytes=2 {value=1}}
  EXPECT_EQ(hex(stats.SerializeAsString()),
            "1204"
            "12020807"
            "1a04"
            "12020809");
}

}  // namespace
