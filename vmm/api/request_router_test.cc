#include "vmm/api/request_router.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "vmm/vmm_config/json.h"

namespace ember::vmm::api {
namespace {

class RouterTest : public ::testing::Test {
 protected:
  RouterTest() {
    log_path_ = ::testing::TempDir() + "/router_test_" + std::to_string(::getpid()) + ".log";
    ::unlink(log_path_.c_str());
    LoggerConfig config;
    config.log_path = log_path_;
    config.level = LogLevel::kDebug;
    logger_.configure(config);
  }
  ~RouterTest() override { ::unlink(log_path_.c_str()); }

  RoutedRequest route(HttpMethod method, std::string uri,
                      std::optional<std::string> body = std::nullopt) {
    HttpRequest r;
    r.method = method;
    r.uri = std::move(uri);
    r.body = std::move(body);
    return router_.route(r);
  }
  // The fault_message of a request answered by the router itself.
  std::string fault_of(HttpMethod method, std::string uri,
                       std::optional<std::string> body = std::nullopt) {
    RoutedRequest r = route(method, std::move(uri), std::move(body));
    if (!r.response) return "<routed to the VMM>";
    EXPECT_EQ(r.response->status, 400);
    std::string prefix = "{\"fault_message\":\"";
    std::string b = r.response->body;
    return b.substr(prefix.size(), b.size() - prefix.size() - 2);
  }
  std::string log() const {
    std::ifstream in(log_path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  std::string log_path_;
  Logger logger_;
  Metrics metrics_;
  RequestRouter router_{logger_, metrics_};
};

TEST_F(RouterTest, GetRootIsInstanceInfo) {
  auto r = route(HttpMethod::kGet, "/");
  ASSERT_TRUE(r.action);
  EXPECT_TRUE(std::holds_alternative<action::GetInstanceInfo>(*r.action));
  EXPECT_TRUE(
      std::holds_alternative<action::GetFullConfig>(*route(HttpMethod::kGet, "/vm/config").action));
  EXPECT_TRUE(std::holds_alternative<action::GetVersion>(
      *route(HttpMethod::kGet, "http://localhost/version").action));
}

TEST_F(RouterTest, MethodAndBodyRulesUseUpstreamMessages) {
  EXPECT_EQ(fault_of(HttpMethod::kGet, "/machine-config", "{}"), "GET request cannot have a body.");
  EXPECT_EQ(fault_of(HttpMethod::kPut, "/machine-config"), "Empty PUT request.");
  EXPECT_EQ(fault_of(HttpMethod::kPatch, "/drives/x"), "Empty PATCH request.");
  EXPECT_EQ(fault_of(HttpMethod::kPut, "/foo/bar", "{}"),
            "Invalid request method and/or path: PUT foo.");
  EXPECT_EQ(fault_of(HttpMethod::kGet, "/vm"), "Invalid request method and/or path: GET vm.");
  EXPECT_EQ(fault_of(HttpMethod::kDelete, "/vm"), "Invalid request method and/or path: DELETE vm.");
  EXPECT_EQ(fault_of(HttpMethod::kPatch, "/machine-config", "{}"), "Empty PATCH request.");
  EXPECT_EQ(fault_of(HttpMethod::kPut, "/snapshot", "{}"), "Missing snapshot operation type.");
  EXPECT_EQ(fault_of(HttpMethod::kPut, "/snapshot/x", "{}"),
            "Invalid request method and/or path: PUT /snapshot/x.");
}

TEST_F(RouterTest, ResourceIdsAreChecked) {
  EXPECT_EQ(fault_of(HttpMethod::kPut, "/drives", "{}"), "The ID cannot be empty.");
  EXPECT_EQ(fault_of(HttpMethod::kPut, "/drives//x", "{}"), "The ID cannot be empty.");
  EXPECT_EQ(fault_of(HttpMethod::kPut, "/drives/a-b", "{}"),
            "API Resource IDs can only contain alphanumeric characters and underscores.");
  EXPECT_EQ(fault_of(HttpMethod::kPut, "/drives/rootfs",
                     R"({"drive_id":"other","is_root_device":false})"),
            "The id from the path does not match the id from the body!");
  EXPECT_EQ(fault_of(HttpMethod::kPut, "/network-interfaces/eth0",
                     R"({"iface_id":"eth1","host_dev_name":"t"})"),
            "The id from the path [eth0] does not match the id from the body [eth1]!");
  EXPECT_EQ(fault_of(HttpMethod::kPatch, "/network-interfaces/eth0", R"({"iface_id":"eth1"})"),
            "The id from the path [eth0] does not match the id from the body [eth1]!");
}

TEST_F(RouterTest, JsonErrorsAreWrappedLikeUpstream) {
  EXPECT_EQ(fault_of(HttpMethod::kPut, "/machine-config", R"({"mem_size_mib": 128})"),
            "An error occurred when deserializing the json body of a request: missing field "
            "`vcpu_count` at line 1 "
            "column 21.");
  EXPECT_EQ(fault_of(HttpMethod::kPut, "/actions", "{"),
            "An error occurred when deserializing the json body of a request: EOF while parsing an "
            "object at line 1 "
            "column 1.");
  EXPECT_EQ(metrics_.counter("put_api_requests", "actions_fails").load(), 1u);
  EXPECT_EQ(metrics_.counter("put_api_requests", "machine_cfg_fails").load(), 1u);
}

TEST_F(RouterTest, DeprecatedFieldsAreFlagged) {
  auto r = route(HttpMethod::kPut, "/machine-config",
                 R"({"vcpu_count": 1, "mem_size_mib": 128, "cpu_template": "None"})");
  ASSERT_TRUE(r.action);
  EXPECT_EQ(r.deprecation, "PUT /machine-config: cpu_template field is deprecated.");
  auto v = route(HttpMethod::kPut, "/vsock",
                 R"({"vsock_id": "v", "guest_cid": 3, "uds_path": "/v.sock"})");
  EXPECT_EQ(v.deprecation, "PUT /vsock: vsock_id field is deprecated.");
  EXPECT_EQ(metrics_.counter("deprecated_api", "deprecated_http_api_calls").load(), 2u);
}

TEST_F(RouterTest, FeaturesEmberLacksAreRefusedByName) {
  EXPECT_EQ(fault_of(HttpMethod::kPut, "/balloon", R"({"amount_mib": 1, "deflate_on_oom": true})"),
            "The balloon device is not supported by ember.");
  EXPECT_EQ(fault_of(HttpMethod::kGet, "/balloon/statistics"),
            "The balloon device is not supported by ember.");
  EXPECT_EQ(fault_of(HttpMethod::kPatch, "/balloon"),
            "The balloon device is not supported by ember.");
  EXPECT_EQ(fault_of(HttpMethod::kGet, "/mmds"), "MMDS is not supported by ember.");
  EXPECT_EQ(fault_of(HttpMethod::kPut, "/mmds/config", "{}"), "MMDS is not supported by ember.");
  EXPECT_EQ(fault_of(HttpMethod::kPut, "/snapshot/create", "{}"),
            "Snapshotting is not supported by ember.");
  EXPECT_EQ(fault_of(HttpMethod::kPut, "/serial", "{}"),
            "Configuring the serial device (PUT /serial) is not supported by ember.");
  EXPECT_EQ(fault_of(HttpMethod::kPut, "/pmem/p", "{}"),
            "The pmem device is not supported by ember.");
  EXPECT_EQ(fault_of(HttpMethod::kGet, "/hotplug/memory"),
            "Memory hotplug is not supported by ember.");
  EXPECT_EQ(fault_of(HttpMethod::kDelete, "/drives/x"),
            "Hot-unplugging devices is not supported by ember.");
}

TEST_F(RouterTest, ActionsAndVmStates) {
  EXPECT_TRUE(std::holds_alternative<action::StartMicroVm>(
      *route(HttpMethod::kPut, "/actions", R"({"action_type": "InstanceStart"})").action));
  EXPECT_TRUE(std::holds_alternative<action::SendCtrlAltDel>(
      *route(HttpMethod::kPut, "/actions", R"({"action_type": "SendCtrlAltDel"})").action));
  EXPECT_TRUE(std::holds_alternative<action::Pause>(
      *route(HttpMethod::kPatch, "/vm", R"({"state": "Paused"})").action));
  EXPECT_TRUE(std::holds_alternative<action::Resume>(
      *route(HttpMethod::kPatch, "/vm", R"({"state": "Resumed"})").action));
  EXPECT_EQ(fault_of(HttpMethod::kPatch, "/vm", R"({"state": "Stopped"})"),
            "An error occurred when deserializing the json body of a request: unknown variant "
            "`Stopped`, expected "
            "`Paused` or `Resumed` at line 1 column 19.");
}

TEST_F(RouterTest, ReceivedLineQuotesPathAndBodyLikeRustDebug) {
  route(HttpMethod::kPut, "/drives/rootfs", "{\"drive_id\": \"rootfs\"}\n");
  route(HttpMethod::kGet, "/machine-config");
  route(HttpMethod::kPut, "/cpu-config", "{}");
  std::string text = log();
  EXPECT_NE(text.find("The API server received a Put request on \"/drives/rootfs\" with body "
                      "\"{\\\"drive_id\\\": \\\"rootfs\\\"}\\n\"."),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("The API server received a Get request on \"/machine-config\"."),
            std::string::npos);
  EXPECT_NE(text.find("The API server received a Put request on \"/cpu-config\" with body \"{}\"."),
            std::string::npos);
}

TEST_F(RouterTest, RespondTurnsOutcomesIntoUpstreamAnswers) {
  EXPECT_EQ(router_.respond(VmmResponse::empty()).status, 204);
  auto e = router_.respond(
      VmmResponse::error("The requested operation is not supported before starting the microVM."));
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(
      e.body,
      R"({"fault_message":"The requested operation is not supported before starting the microVM."})");
  auto m = router_.respond(VmmResponse{MachineConfig{}});
  EXPECT_EQ(m.status, 200);
  EXPECT_EQ(m.body, json::to_json(MachineConfig{}));
  EXPECT_NE(
      log().find("Received Error. Status code: 400 Bad Request. Message: The requested operation"),
      std::string::npos);
}

}  // namespace
}  // namespace ember::vmm::api
