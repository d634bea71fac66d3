// ember-vmm's API before InstanceStart, against the real binary: every
// endpoint's success and error answers, with Firecracker's exact texts.
// Needs no KVM: nothing here boots a guest.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/integration/api_harness.h"

namespace ember::testing {
namespace {

using nlohmann::json;

class ApiPreboot : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(vmm_.wait_ready()) << vmm_.stdout_text() << vmm_.stderr_text();
    kernel_ = (vmm_.dir() / "vmlinux.bin").string();
    write_file(kernel_, "not really a kernel");
    rootfs_ = (vmm_.dir() / "rootfs.ext4").string();
    write_file(rootfs_, std::string(1 << 16, '\0'));
  }

  // {"fault_message": ...} of a 400 answer, or a marker for other answers.
  std::string fault(const HttpReply& r) {
    if (r.status != 400) return "<status " + std::to_string(r.status) + ": " + r.body + ">";
    return json::parse(r.body).at("fault_message").get<std::string>();
  }

  EmberVmm vmm_{{"--id", "api-preboot"}};
  ApiClient api_ = vmm_.client();
  std::string kernel_, rootfs_;
};

TEST_F(ApiPreboot, RootAndVersionDescribeTheInstance) {
  HttpReply r = api_.get("/");
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.has_header("Server: Firecracker API"));
  EXPECT_TRUE(r.has_header("Connection: keep-alive"));
  EXPECT_TRUE(r.has_header("Content-Type: application/json"));
  json info = json::parse(r.body);
  EXPECT_EQ(info["app_name"], "Firecracker");
  EXPECT_EQ(info["id"], "api-preboot");
  EXPECT_EQ(info["state"], "Not started");
  HttpReply v = api_.get("/version");
  EXPECT_EQ(v.status, 200);
  EXPECT_EQ(json::parse(v.body)["firecracker_version"], info["vmm_version"]);
  EXPECT_EQ(r.raw.rfind("HTTP/1.1 200 \r\n", 0), 0u)
      << "status line must be upstream's (no reason phrase)";
}

TEST_F(ApiPreboot, SuccessfulPutsAnswer204WithoutBodyHeaders) {
  HttpReply r = api_.put(
      "/boot-source", json{{"kernel_image_path", kernel_}, {"boot_args", "console=ttyS0"}}.dump());
  EXPECT_EQ(r.raw, "HTTP/1.1 204 \r\nServer: Firecracker API\r\nConnection: keep-alive\r\n\r\n");
  EXPECT_EQ(api_.put("/machine-config", R"({"vcpu_count": 2, "mem_size_mib": 256})").status, 204);
  EXPECT_EQ(api_.patch("/machine-config", R"({"track_dirty_pages": true})").status, 204);
  EXPECT_EQ(api_.put("/drives/rootfs", json{{"drive_id", "rootfs"},
                                            {"path_on_host", rootfs_},
                                            {"is_root_device", true},
                                            {"is_read_only", true}}
                                           .dump())
                .status,
            204);
  EXPECT_EQ(
      api_.put("/network-interfaces/eth0",
               R"({"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "06:00:00:00:00:01"})")
          .status,
      204);
  EXPECT_EQ(api_.put("/vsock",
                     json{{"guest_cid", 3}, {"uds_path", (vmm_.dir() / "v.sock").string()}}.dump())
                .status,
            204);
  EXPECT_EQ(
      api_.put("/entropy", R"({"rate_limiter": {"bandwidth": {"size": 1000, "refill_time": 100}}})")
          .status,
      204);
  EXPECT_EQ(api_.put("/cpu-config", R"({"kvm_capabilities": ["!56"]})").status, 204);
  EXPECT_EQ(api_.put("/logger", json{{"level", "Debug"}, {"show_level", true}}.dump()).status, 204);
  HttpReply m = api_.get("/machine-config");
  EXPECT_EQ(m.status, 200);
  EXPECT_EQ(json::parse(m.body), json::parse(R"({"vcpu_count": 2, "mem_size_mib": 256, "smt": false,
                                                  "track_dirty_pages": true, "huge_pages": "None"})"));
}

TEST_F(ApiPreboot, FullVmConfigHasEveryKeyWithNullsForUnsetSections) {
  api_.put("/boot-source", json{{"kernel_image_path", kernel_}, {"boot_args", ""}}.dump());
  api_.put("/machine-config", R"({"vcpu_count": 2, "mem_size_mib": 256})");
  api_.put("/drives/rootfs", json{{"drive_id", "rootfs"},
                                  {"path_on_host", rootfs_},
                                  {"is_root_device", true},
                                  {"is_read_only", true},
                                  {"io_engine", "Sync"}}
                                 .dump());
  api_.put("/network-interfaces/1",
           R"({"iface_id": "1", "host_dev_name": "tap1", "guest_mac": "06:00:00:00:00:01",
      "tx_rate_limiter": {"bandwidth": {"size": 1000000, "refill_time": 100, "one_time_burst": null}, "ops": null}})");
  api_.put("/vsock", R"({"guest_cid": 15, "uds_path": "vsock.sock"})");
  HttpReply r = api_.get("/vm/config");
  ASSERT_EQ(r.status, 200);
  json expected = {
      {"balloon", nullptr},
      {"drives", json::array({{{"drive_id", "rootfs"},
                               {"partuuid", nullptr},
                               {"is_root_device", true},
                               {"cache_type", "Unsafe"},
                               {"is_read_only", true},
                               {"path_on_host", rootfs_},
                               {"rate_limiter", nullptr},
                               {"io_engine", "Sync"},
                               {"socket", nullptr}}})},
      {"boot-source",
       {{"kernel_image_path", kernel_}, {"initrd_path", nullptr}, {"boot_args", ""}}},
      {"cpu-config", nullptr},
      {"logger", nullptr},
      {"machine-config",
       {{"vcpu_count", 2},
        {"mem_size_mib", 256},
        {"smt", false},
        {"track_dirty_pages", false},
        {"huge_pages", "None"}}},
      {"metrics", nullptr},
      {"mmds-config", nullptr},
      {"network-interfaces",
       json::array({{{"iface_id", "1"},
                     {"host_dev_name", "tap1"},
                     {"guest_mac", "06:00:00:00:00:01"},
                     {"mtu", nullptr},
                     {"rx_rate_limiter", nullptr},
                     {"tx_rate_limiter",
                      {{"bandwidth",
                        {{"size", 1000000}, {"one_time_burst", nullptr}, {"refill_time", 100}}},
                       {"ops", nullptr}}}}})},
      {"vsock", {{"guest_cid", 15}, {"uds_path", "vsock.sock"}}},
      {"entropy", nullptr},
      {"pmem", json::array()},
      {"memory-hotplug", nullptr}};
  EXPECT_EQ(json::parse(r.body), expected) << r.body;
}

TEST_F(ApiPreboot, ConfigurationErrorsUseUpstreamMessages) {
  EXPECT_EQ(fault(api_.put("/boot-source", R"({"kernel_image_path": "foo.bar"})")),
            "Boot source error: The kernel file cannot be opened: No such file or directory (os "
            "error 2)");
  EXPECT_EQ(fault(api_.put("/machine-config", R"({"mem_size_mib": 128})")),
            "An error occurred when deserializing the json body of a request: missing field "
            "`vcpu_count` at line 1 "
            "column 21.");
  EXPECT_EQ(fault(api_.put("/machine-config", R"({"vcpu_count": 2})")),
            "An error occurred when deserializing the json body of a request: missing field "
            "`mem_size_mib` at line 1 "
            "column 17.");
  EXPECT_EQ(fault(api_.patch("/machine-config", R"({"mem_size_mib": 0})")),
            "Machine config error: The memory size (MiB) is either 0, or not a multiple of the "
            "configured page size.");
  EXPECT_NE(fault(api_.put("/machine-config",
                           R"({"vcpu_count": 2, "mem_size_mib": 18446744073709551616})"))
                .find("error occurred when deserializing the json body of a request: invalid type"),
            std::string::npos);
  EXPECT_EQ(fault(api_.patch("/machine-config", "{}")), "Empty PATCH request.");
  std::string missing = (vmm_.dir() / "foo.bar").string();
  EXPECT_NE(fault(api_.put("/drives/rootfs", json{{"drive_id", "rootfs"},
                                                  {"path_on_host", missing},
                                                  {"is_root_device", true},
                                                  {"is_read_only", true}}
                                                 .dump()))
                .find("No such file or directory"),
            std::string::npos);
  api_.put(
      "/drives/rootfs",
      json{{"drive_id", "rootfs"}, {"path_on_host", rootfs_}, {"is_root_device", true}}.dump());
  EXPECT_EQ(fault(api_.put(
                "/drives/scratch",
                json{{"drive_id", "scratch"}, {"path_on_host", rootfs_}, {"is_root_device", true}}
                    .dump())),
            "Drive config error: A root block device already exists!");
  api_.put("/network-interfaces/1",
           R"({"iface_id": "1", "host_dev_name": "tap1", "guest_mac": "06:00:00:00:00:01"})");
  EXPECT_EQ(fault(api_.put(
                "/network-interfaces/2",
                R"({"iface_id": "2", "host_dev_name": "tap2", "guest_mac": "06:00:00:00:00:01"})")),
            "Network config error: The MAC address is already in use: 06:00:00:00:00:01");
  EXPECT_EQ(fault(api_.put("/logger", R"({"level": "loud"})")),
            "An error occurred when deserializing the json body of a request: Invalid LevelFilter "
            "at line 1 column 17.");
  EXPECT_EQ(fault(api_.put("/actions", R"({"action_type": "Explode"})")),
            "An error occurred when deserializing the json body of a request: unknown variant "
            "`Explode`, expected one "
            "of `FlushMetrics`, `InstanceStart`, `SendCtrlAltDel` at line 1 column 25.");
}

TEST_F(ApiPreboot, UnknownFieldsAreRejected) {
  std::string f = fault(api_.put("/drives/rootfs", json{{"drive_id", "rootfs"},
                                                        {"path_on_host", rootfs_},
                                                        {"is_root_device", true},
                                                        {"is_read_onyl", true}}
                                                       .dump()));
  EXPECT_NE(f.find("unknown field `is_read_onyl`, expected one of `drive_id`, `partuuid`"),
            std::string::npos)
      << f;
  EXPECT_NE(fault(api_.put("/boot-source", R"({"kernel": "x"})")).find("unknown field `kernel`"),
            std::string::npos);
  EXPECT_NE(fault(api_.put("/vsock", R"({"guest_cid": 3, "uds_path": "/x", "port": 1})"))
                .find("unknown field `port`"),
            std::string::npos);
}

TEST_F(ApiPreboot, MalformedJsonIsA400NamingTheProblem) {
  EXPECT_EQ(fault(api_.put("/actions", "{\"action_type\": ")),
            "An error occurred when deserializing the json body of a request: EOF while parsing a "
            "value at line 1 "
            "column 16.");
  EXPECT_EQ(fault(api_.put("/machine-config", R"({"vcpu_count": 2,})")),
            "An error occurred when deserializing the json body of a request: trailing comma at "
            "line 1 column 18.");
  EXPECT_EQ(fault(api_.put("/boot-source", "[]")),
            "An error occurred when deserializing the json body of a request: invalid type: "
            "sequence, expected struct "
            "BootSourceConfig at line 1 column 0.");
  EXPECT_EQ(fault(api_.put("/vsock", R"({"guest_cid": "3", "uds_path": "x"})")),
            "An error occurred when deserializing the json body of a request: invalid type: string "
            "\"3\", expected u32 "
            "at line 1 column 17.");
}

TEST_F(ApiPreboot, PathAndIdErrors) {
  EXPECT_EQ(fault(api_.put("/drives", R"({"drive_id": "a", "is_root_device": false})")),
            "The ID cannot be empty.");
  EXPECT_EQ(fault(api_.put("/drives/a.b", R"({"drive_id": "a.b", "is_root_device": false})")),
            "API Resource IDs can only contain alphanumeric characters and underscores.");
  EXPECT_EQ(fault(api_.put("/drives/a", R"({"drive_id": "b", "is_root_device": false})")),
            "The id from the path does not match the id from the body!");
  EXPECT_EQ(fault(api_.put("/nothing", "{}")), "Invalid request method and/or path: PUT nothing.");
  EXPECT_EQ(fault(api_.request("DELETE", "/machine-config", std::nullopt)),
            "Invalid request method and/or path: DELETE machine-config.");
  EXPECT_EQ(fault(api_.put("/machine-config", "")), "Empty PUT request.");
  EXPECT_EQ(fault(api_.request("GET", "/machine-config", std::string("{}"))),
            "GET request cannot have a body.");
}

TEST_F(ApiPreboot, RuntimeOperationsAreRefusedBeforeStart) {
  const std::string pre = "The requested operation is not supported before starting the microVM.";
  EXPECT_EQ(fault(api_.patch("/vm", R"({"state": "Paused"})")), pre);
  EXPECT_EQ(fault(api_.patch("/vm", R"({"state": "Resumed"})")), pre);
  EXPECT_EQ(fault(api_.put("/actions", R"({"action_type": "FlushMetrics"})")), pre);
  EXPECT_EQ(fault(api_.put("/actions", R"({"action_type": "SendCtrlAltDel"})")), pre);
  EXPECT_EQ(fault(api_.patch("/drives/rootfs", R"({"drive_id": "rootfs", "path_on_host": "/x"})")),
            pre);
  EXPECT_EQ(fault(api_.patch("/network-interfaces/eth0", R"({"iface_id": "eth0"})")), pre);
  EXPECT_EQ(fault(api_.put("/actions", R"({"action_type": "InstanceStart"})")),
            "Start microvm error: Cannot start microvm without kernel configuration.");
}

TEST_F(ApiPreboot, EndpointsEmberLacksAnswerWithAFaultMessage) {
  EXPECT_EQ(fault(api_.put("/balloon", R"({"amount_mib": 1, "deflate_on_oom": true})")),
            "The balloon device is not supported by ember.");
  EXPECT_EQ(fault(api_.get("/balloon")), "The balloon device is not supported by ember.");
  EXPECT_EQ(fault(api_.get("/mmds")), "MMDS is not supported by ember.");
  EXPECT_EQ(fault(api_.put("/mmds", "{}")), "MMDS is not supported by ember.");
  EXPECT_EQ(fault(api_.put("/mmds/config", R"({"network_interfaces": ["1"]})")),
            "MMDS is not supported by ember.");
  EXPECT_EQ(fault(api_.put("/snapshot/load", R"({"snapshot_path": "x"})")),
            "Snapshotting is not supported by ember.");
  EXPECT_EQ(fault(api_.put("/snapshot/create", R"({"snapshot_path": "x", "mem_file_path": "y"})")),
            "Snapshotting is not supported by ember.");
  EXPECT_EQ(fault(api_.put("/serial", R"({"serial_out_path": "/x"})")),
            "Configuring the serial device (PUT /serial) is not supported by ember.");
  EXPECT_EQ(fault(api_.put("/pmem/p0", R"({"id": "p0", "path_on_host": "/x"})")),
            "The pmem device is not supported by ember.");
  EXPECT_EQ(fault(api_.put("/hotplug/memory", R"({"total_size_mib": 1024})")),
            "Memory hotplug is not supported by ember.");
  EXPECT_EQ(api_.get("/").status, 200) << "the VMM must still be serving";
}

TEST_F(ApiPreboot, DeprecatedFieldsGetTheDeprecationHeader) {
  HttpReply r = api_.put("/machine-config",
                         R"({"vcpu_count": 1, "mem_size_mib": 128, "cpu_template": "None"})");
  EXPECT_EQ(r.status, 204);
  EXPECT_TRUE(r.has_header("Deprecation: true"));
  HttpReply v = api_.put(
      "/vsock",
      json{{"vsock_id", "v"}, {"guest_cid", 3}, {"uds_path", (vmm_.dir() / "d.sock").string()}}
          .dump());
  EXPECT_EQ(v.status, 204);
  EXPECT_TRUE(v.has_header("Deprecation: true"));
}

TEST_F(ApiPreboot, MetricsCanOnlyBeInitialisedOnce) {
  std::string path = (vmm_.dir() / "metrics.ndjson").string();
  EXPECT_EQ(api_.put("/metrics", json{{"metrics_path", path}}.dump()).status, 204);
  EXPECT_EQ(fault(api_.put("/metrics", json{{"metrics_path", path}}.dump())),
            "Metrics error: Cannot initialize the metrics system due to bad user input: "
            "Reinitialization of metrics not "
            "allowed.");
}

TEST_F(ApiPreboot, MachineRefusalAtInstanceStartIsReturned) {
  // The payload kit's hello guest would boot; a kernel file that is not an
  // ELF/bzImage makes the machine refuse, and the 400 carries its words.
  api_.put("/boot-source", json{{"kernel_image_path", kernel_}}.dump());
  HttpReply r = api_.put("/actions", R"({"action_type": "InstanceStart"})");
  EXPECT_EQ(r.status, 400);
  std::string f = fault(r);
  EXPECT_EQ(f.rfind("Start microvm error: ", 0), 0u) << f;
  EXPECT_GT(f.size(), std::string("Start microvm error: ").size());
  EXPECT_EQ(json::parse(api_.get("/").body)["state"], "Not started");
}

TEST(ApiPayloadLimit, OversizedBodyGetsUpstreamsRawBytes) {
  EmberVmm vmm({"--http-api-max-payload-size", "250"});
  ASSERT_TRUE(vmm.wait_ready());
  ApiClient api = vmm.client();
  // What upstream's test_config_start_with_limit sends with curl.
  api.send_raw(
      "PUT /mmds/config HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/7.88.1\r\nAccept: "
      "application/json\r\n"
      "Content-Length: 260\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\nsome body");
  HttpReply r = api.read_reply();
  EXPECT_EQ(r.raw,
            "HTTP/1.1 400 \r\nServer: Firecracker API\r\nConnection: keep-alive\r\nContent-Type: "
            "application/json\r\n"
            "Content-Length: 145\r\n\r\n{ \"error\": \"Request payload with size 260 is larger "
            "than the limit of 250 "
            "allowed by server.\nAll previous unanswered requests will be dropped.\" }");
}

}  // namespace
}  // namespace ember::testing
