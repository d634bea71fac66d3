#include "vmm/logger/metrics.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "vmm/common/error.h"
#include "vmm/logger/testing/firecracker_metric_groups.h"

namespace ember::vmm {
namespace {

using nlohmann::json;

TEST(Metrics, EveryFirecrackerGroupIsPresentEvenWhenNothingCounted) {
  Metrics metrics;
  json line = json::parse(metrics.serialize());
  for (const char* group : testing::kFirecrackerMetricGroups) {
    EXPECT_TRUE(line.contains(group)) << group;
  }
  EXPECT_TRUE(line["utc_timestamp_ms"].is_number_integer());
  EXPECT_EQ(line["vcpu"]["exit_io_in_agg"], (json{{"min_us", 0}, {"max_us", 0}, {"sum_us", 0}}));
  EXPECT_EQ(line["put_api_requests"].size(), 26u);
  EXPECT_FALSE(line.contains("id"));
  EXPECT_FALSE(line.contains("properties"));
}

TEST(Metrics, CountersReportDeltasAndStoresAbsoluteValues) {
  Metrics metrics;
  Counter& requests = metrics.counter("put_api_requests", "actions_count");
  Counter& startup = metrics.counter("api_server", "process_startup_time_us");
  requests.inc(3);
  startup.store(1234);
  json first = json::parse(metrics.serialize());
  EXPECT_EQ(first["put_api_requests"]["actions_count"], 3);
  EXPECT_EQ(first["api_server"]["process_startup_time_us"], 1234);
  requests.inc();
  json second = json::parse(metrics.serialize());
  EXPECT_EQ(second["put_api_requests"]["actions_count"], 1);
  EXPECT_EQ(second["api_server"]["process_startup_time_us"], 1234);
}

TEST(Metrics, PerDeviceGroupsGetTheFamilyKeysBeforeTheAggregate) {
  Metrics metrics;
  metrics.counter("block_rootfs", "read_count").inc(2);
  metrics.counter("net_eth0", "tx_count").inc();
  std::string text = metrics.serialize();
  json line = json::parse(text);
  EXPECT_EQ(line["block_rootfs"]["read_count"], 2);
  EXPECT_EQ(line["block_rootfs"].size(), line["block"].size());
  EXPECT_EQ(line["net_eth0"].size(), line["net"].size());
  EXPECT_TRUE(line["block_rootfs"]["read_agg"].is_object());
  EXPECT_LT(text.find("\"block_rootfs\""), text.find("\"block\""));
}

TEST(Metrics, NestedNamesBecomeObjects) {
  Metrics metrics;
  metrics.counter("mine", "lat.min_us", Metrics::Kind::kStore).store(5);
  metrics.counter("mine", "lat.sum_us").inc(9);
  json line = json::parse(metrics.serialize());
  EXPECT_EQ(line["mine"]["lat"], (json{{"min_us", 5}, {"sum_us", 9}}));
}

TEST(Metrics, ConfigureOnlyOnceAndEmitIdAndProperties) {
  std::string path =
      ::testing::TempDir() + "/metrics_test_" + std::to_string(::getpid()) + ".ndjson";
  ::unlink(path.c_str());
  Metrics metrics("vm-7");
  EXPECT_FALSE(metrics.flush());
  MetricsConfig config{path, true, {{"b", "2"}, {"a", "1"}}};
  metrics.configure(config);
  try {
    metrics.configure(config);
    FAIL() << "second configure must fail";
  } catch (const common::Error& e) {
    EXPECT_STREQ(e.what(), "Reinitialization of metrics not allowed.");
  }
  EXPECT_TRUE(metrics.flush());
  EXPECT_TRUE(metrics.flush());
  std::ifstream in(path);
  std::string l1, l2;
  std::getline(in, l1);
  std::getline(in, l2);
  json j = json::parse(l1);
  EXPECT_EQ(j["id"], "vm-7");
  EXPECT_EQ(j["properties"], (json{{"a", "1"}, {"b", "2"}}));
  EXPECT_FALSE(l2.empty());
  ::unlink(path.c_str());
}

TEST(Metrics, UnopenablePathKeepsErrno) {
  Metrics metrics;
  try {
    MetricsConfig config;
    config.metrics_path = "/nonexistent-dir/m.json";
    metrics.configure(config);
    FAIL();
  } catch (const common::SystemError& e) {
    EXPECT_EQ(e.error_code(), ENOENT);
  }
  EXPECT_FALSE(metrics.configured());
}

}  // namespace
}  // namespace ember::vmm
