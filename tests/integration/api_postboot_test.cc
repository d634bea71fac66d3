// ember-vmm's API after InstanceStart, with payload guests from
// tests/payloads on /dev/kvm: runtime operations, post-boot rejections,
// metrics lines, --config-file boots with and without the API, and how the
// process ends when the guest does.
#include <gtest/gtest.h>
#include <signal.h>
#include <time.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "tests/harness/require.h"
#include "tests/integration/api_harness.h"
#include "tests/integration/payload_runner.h"
#include "vmm/logger/testing/firecracker_metric_groups.h"

namespace ember::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

std::string fault(const HttpReply& r) {
  if (r.status != 400) return "<status " + std::to_string(r.status) + ": " + r.body + ">";
  return json::parse(r.body).at("fault_message").get<std::string>();
}

std::vector<json> metrics_lines(const std::filesystem::path& path) {
  std::vector<json> lines;
  std::string text = read_file(path);
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) break;
    lines.push_back(json::parse(text.substr(start, end - start)));
    start = end + 1;
  }
  return lines;
}

// What upstream's tests/host_tools/fcmetrics.py requires of every line.
void expect_firecracker_metrics_schema(const json& line) {
  for (const char* group : vmm::testing::kFirecrackerMetricGroups)
    EXPECT_TRUE(line.contains(group) && line[group].is_object()) << group;
  EXPECT_TRUE(line["utc_timestamp_ms"].is_number_integer());
  for (const char* key : {"read_count", "write_count", "flush_count", "read_agg", "write_agg",
                          "remaining_reqs_count"})
    EXPECT_TRUE(line["block"].contains(key)) << key;
  EXPECT_EQ(line["vcpu"]["exit_mmio_read_agg"].size(), 3u);
}

class ApiPostboot : public ::testing::Test {
 protected:
  void SetUp() override {
    EMBER_REQUIRE_KVM();
    // As the jailer passes them: monotonic wall and process CPU clocks at
    // its start, here this test's.
    timespec now, cpu;
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
    auto us = [](const timespec& t) {
      return std::to_string(t.tv_sec * 1000000LL + t.tv_nsec / 1000);
    };
    vmm_ = std::make_unique<EmberVmm>(std::vector<std::string>{
        "--id", "postboot", "--level", "Debug", "--log-path", (dir_ / "fc.log").string(),
        "--metrics-path", (dir_ / "metrics.ndjson").string(), "--start-time-us", us(now),
        "--start-time-cpu-us", "0", "--parent-cpu-time-us", us(cpu)});
    ASSERT_TRUE(vmm_->wait_ready()) << vmm_->stdout_text();
    api_ = std::make_unique<ApiClient>(vmm_->client());
    disk_ = (dir_ / "scratch.img").string();
    write_file(disk_, std::string(1 << 20, '\0'));
    ASSERT_EQ(
        api_->put("/boot-source", json{{"kernel_image_path", payload_path("spin").string()}}.dump())
            .status,
        204);
    ASSERT_EQ(api_->put("/machine-config", R"({"vcpu_count": 1, "mem_size_mib": 64})").status, 204);
    ASSERT_EQ(
        api_->put("/drives/scratch",
                  json{{"drive_id", "scratch"}, {"path_on_host", disk_}, {"is_root_device", false}}
                      .dump())
            .status,
        204);
    HttpReply start = api_->put("/actions", R"({"action_type": "InstanceStart"})");
    ASSERT_EQ(start.status, 204) << start.body << read_file(dir_ / "fc.log");
  }

  TempDir dir_{"ember-postboot"};
  std::unique_ptr<EmberVmm> vmm_;
  std::unique_ptr<ApiClient> api_;
  std::string disk_;
};

TEST_F(ApiPostboot, ConfigurationIsRefusedAfterStart) {
  const std::string post = "The requested operation is not supported after starting the microVM.";
  EXPECT_EQ(fault(api_->put("/boot-source",
                            json{{"kernel_image_path", payload_path("spin").string()}}.dump())),
            post);
  EXPECT_EQ(fault(api_->put("/machine-config", R"({"vcpu_count": 2, "mem_size_mib": 64})")), post);
  EXPECT_EQ(fault(api_->patch("/machine-config", R"({"vcpu_count": 2})")), post);
  EXPECT_EQ(
      fault(api_->put(
          "/drives/other",
          json{{"drive_id", "other"}, {"path_on_host", disk_}, {"is_root_device", false}}.dump())),
      post);
  EXPECT_EQ(fault(api_->put("/network-interfaces/eth0",
                            R"({"iface_id": "eth0", "host_dev_name": "tap0"})")),
            post);
  EXPECT_EQ(fault(api_->put("/vsock", R"({"guest_cid": 3, "uds_path": "/x.sock"})")), post);
  EXPECT_EQ(fault(api_->put("/entropy", "{}")), post);
  EXPECT_EQ(fault(api_->put("/logger", R"({"level": "Info"})")), post);
  EXPECT_EQ(fault(api_->put("/metrics", R"({"metrics_path": "/x"})")), post);
  EXPECT_EQ(fault(api_->put("/cpu-config", "{}")), post);
  EXPECT_EQ(fault(api_->put("/actions", R"({"action_type": "InstanceStart"})")), post);
  EXPECT_EQ(json::parse(api_->get("/").body)["state"], "Running");
}

TEST_F(ApiPostboot, PauseResumeAndInstanceState) {
  EXPECT_EQ(api_->patch("/vm", R"({"state": "Paused"})").status, 204);
  EXPECT_EQ(json::parse(api_->get("/").body)["state"], "Paused");
  EXPECT_EQ(api_->patch("/vm", R"({"state": "Paused"})").status, 204) << "pausing twice is allowed";
  EXPECT_EQ(api_->patch("/vm", R"({"state": "Resumed"})").status, 204);
  EXPECT_EQ(json::parse(api_->get("/").body)["state"], "Running");
  std::string log = read_file(dir_ / "fc.log");
  EXPECT_NE(log.find("'pause vm' API request took "), std::string::npos);
  EXPECT_NE(log.find("'resume vm' VMM action took "), std::string::npos);
}

TEST_F(ApiPostboot, DrivePatchReachesTheMachine) {
  std::string other = (dir_ / "other.img").string();
  write_file(other, std::string(2 << 20, '\0'));
  EXPECT_EQ(
      api_->patch("/drives/scratch", json{{"drive_id", "scratch"}, {"path_on_host", other}}.dump())
          .status,
      204);
  json config = json::parse(api_->get("/vm/config").body);
  EXPECT_EQ(config["drives"][0]["path_on_host"], other);
  std::string f = fault(
      api_->patch("/drives/nope", json{{"drive_id", "nope"}, {"path_on_host", other}}.dump()));
  EXPECT_EQ(f.rfind("Drive config error: Unable to patch the block device: ", 0), 0u) << f;
  EXPECT_NE(f.find("Please verify the request arguments."), std::string::npos);
}

TEST_F(ApiPostboot, FullConfigAfterBootReportsWhatWasBuilt) {
  HttpReply r = api_->get("/vm/config");
  ASSERT_EQ(r.status, 200);
  json config = json::parse(r.body);
  EXPECT_EQ(config.size(), 13u);
  EXPECT_EQ(config["boot-source"]["kernel_image_path"], payload_path("spin").string());
  EXPECT_EQ(config["machine-config"]["mem_size_mib"], 64);
  EXPECT_EQ(config["drives"][0]["drive_id"], "scratch");
  EXPECT_TRUE(config["logger"].is_null());
  EXPECT_TRUE(config["metrics"].is_null());
}

TEST_F(ApiPostboot, MetricsAreWrittenAtStartOnFlushAndAtExitWithTheFullSchema) {
  EXPECT_EQ(api_->put("/actions", R"({"action_type": "FlushMetrics"})").status, 204);
  EXPECT_EQ(api_->put("/actions", R"({"action_type": "FlushMetrics"})").status, 204);
  auto lines = metrics_lines(dir_ / "metrics.ndjson");
  ASSERT_GE(lines.size(), 3u) << "one at start, one per FlushMetrics";
  for (const auto& line : lines) expect_firecracker_metrics_schema(line);
  uint64_t startup_us = lines[0]["api_server"]["process_startup_time_us"];
  EXPECT_GT(startup_us, 0u);
  EXPECT_LT(startup_us, 10000000u);
  EXPECT_GT(lines[0]["api_server"]["process_startup_time_cpu_us"].get<uint64_t>(), 0u);
  EXPECT_TRUE(lines.back().contains("block_scratch"));
  // Counters are deltas: the second flush saw one more PUT /actions than the first.
  EXPECT_EQ(lines[lines.size() - 1]["put_api_requests"]["actions_count"], 1);
  vmm_->signal(SIGTERM);
  ASSERT_EQ(vmm_->wait_exit(), 0);
  EXPECT_GT(metrics_lines(dir_ / "metrics.ndjson").size(), lines.size()) << "a last line at exit";
}

TEST_F(ApiPostboot, SigtermStopsTheGuestAndExitsZero) {
  ASSERT_TRUE(vmm_->wait_for_stdout("spinning"))
      << "the guest's serial console is stdout: " << vmm_->stdout_text();
  EXPECT_EQ(api_->put("/actions", R"({"action_type": "SendCtrlAltDel"})").status, 204);
  vmm_->signal(SIGTERM);
  EXPECT_EQ(vmm_->wait_exit(), 0);
  std::string log = read_file(dir_ / "fc.log");
  EXPECT_NE(log.find("Firecracker exiting successfully. exit_code=0"), std::string::npos) << log;
}

std::string config_for(const std::string& payload) {
  return json{{"boot-source",
               {{"kernel_image_path", payload_path(payload).string()},
                {"boot_args", "console=ttyS0"},
                {"initrd_path", nullptr}}},
              {"drives", json::array()},
              {"machine-config",
               {{"vcpu_count", 1},
                {"mem_size_mib", 64},
                {"smt", false},
                {"track_dirty_pages", false},
                {"huge_pages", "None"}}},
              {"cpu-config", nullptr},
              {"balloon", nullptr},
              {"network-interfaces", json::array()},
              {"vsock", nullptr},
              {"logger", nullptr},
              {"metrics", nullptr},
              {"mmds-config", nullptr},
              {"entropy", nullptr},
              {"pmem", json::array()},
              {"memory-hotplug", nullptr}}
      .dump(2);
}

TEST(ApiConfigFile, NoApiRunsTheGuestToItsEndAndExitsZero) {
  EMBER_REQUIRE_KVM();
  TempDir dir("ember-noapi");
  write_file(dir / "vm.json", config_for("hello"));
  EmberVmm vmm({"--no-api", "--config-file", (dir / "vm.json").string()});
  EXPECT_EQ(vmm.wait_exit(20s), 0);
  std::string out = vmm.stdout_text();
  EXPECT_NE(out.find("hello from an ember payload"), std::string::npos) << out;
  EXPECT_NE(out.find("Successfully started microvm that was configured from one single json"),
            std::string::npos);
  EXPECT_NE(out.find("Firecracker exiting successfully. exit_code=0"), std::string::npos) << out;
  EXPECT_EQ(out.find("fc_api"), std::string::npos) << "no API thread with --no-api";
}

TEST(ApiConfigFile, WithTheApiTheConfigIsReportedBackUnchanged) {
  EMBER_REQUIRE_KVM();
  TempDir dir("ember-configapi");
  std::string config = config_for("spin");
  write_file(dir / "vm.json", config);
  EmberVmm vmm({"--config-file", (dir / "vm.json").string()});
  ASSERT_TRUE(vmm.wait_ready()) << vmm.stdout_text();
  ApiClient api = vmm.client();
  json info = json::parse(api.get("/").body);
  EXPECT_EQ(info["state"], "Running");
  EXPECT_EQ(json::parse(api.get("/vm/config").body), json::parse(config));
}

TEST(ApiConfigFile, GuestErrorEndsTheProcessWithExitCode1) {
  EMBER_REQUIRE_KVM();
  TempDir dir("ember-fault");
  write_file(dir / "vm.json", config_for("triple_fault"));
  EmberVmm vmm({"--config-file", (dir / "vm.json").string()});
  EXPECT_EQ(vmm.wait_exit(20s), 1);
  std::string out = vmm.stdout_text();
  EXPECT_NE(out.find("RunWithApi error: MicroVM stopped with an error: GenericError"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("Firecracker exiting with error. exit_code=1"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(vmm.socket()));
}

TEST(ApiConfigFile, BootTimerFlagReachesTheMachine) {
  EMBER_REQUIRE_KVM();
  TempDir dir("ember-boottimer");
  write_file(dir / "vm.json", config_for("boot_timer"));
  EmberVmm vmm({"--no-api", "--boot-timer", "--config-file", (dir / "vm.json").string()});
  EXPECT_EQ(vmm.wait_exit(20s), 0);
  EXPECT_NE(vmm.stdout_text().find("Guest-boot-time"), std::string::npos) << vmm.stdout_text();
}

}  // namespace
}  // namespace ember::testing
