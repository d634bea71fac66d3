// ember's containerd .proto files produce the same bytes, type names and
// service names as containerd's own (hand-computed golden bytes; reference §2, §3).
#include <gtest/gtest.h>

#include <memory>

#include "containerd/cgroups/v1/metrics.pb.h"
#include "containerd/cgroups/v2/metrics.pb.h"
#include "containerd/events/task.pb.h"
#include "containerd/runtimeoptions/v1/api.pb.h"
#include "containerd/services/events/ttrpc/v1/events.ttrpc.pb.h"
#include "containerd/task/v2/shim.ttrpc.pb.h"
#include "containerd/task/v3/shim.ttrpc.pb.h"
#include "proto/ttrpc/client.h"
#include "proto/ttrpc/server.h"
#include "proto/ttrpc/test_peer.h"

namespace {

using ember::ttrpc::testing::hex;
using ember::ttrpc::testing::unhex;
namespace task = containerd::task::v2;

TEST(ContainerdProto, ServiceNamesMatchContainerd) {
  EXPECT_EQ(containerd::task::v2::TaskService::kServiceName, "containerd.task.v2.Task");
  EXPECT_EQ(containerd::task::v3::TaskService::kServiceName, "containerd.task.v3.Task");
  EXPECT_EQ(containerd::services::events::ttrpc::v1::EventsService::kServiceName,
            "containerd.services.events.ttrpc.v1.Events");
}

TEST(ContainerdProto, EventTypeNamesAreTheAnyTypeUrlsSubscribersExpect) {
  namespace ev = containerd::events;
  EXPECT_EQ(ev::TaskCreate().GetTypeName(), "containerd.events.TaskCreate");
  EXPECT_EQ(ev::TaskStart().GetTypeName(), "containerd.events.TaskStart");
  EXPECT_EQ(ev::TaskExit().GetTypeName(), "containerd.events.TaskExit");
  EXPECT_EQ(ev::TaskDelete().GetTypeName(), "containerd.events.TaskDelete");
  EXPECT_EQ(ev::TaskIO().GetTypeName(), "containerd.events.TaskIO");
  EXPECT_EQ(ev::TaskExecAdded().GetTypeName(), "containerd.events.TaskExecAdded");
  EXPECT_EQ(ev::TaskExecStarted().GetTypeName(), "containerd.events.TaskExecStarted");
  EXPECT_EQ(ev::TaskOOM().GetTypeName(), "containerd.events.TaskOOM");
  EXPECT_EQ(ev::TaskPaused().GetTypeName(), "containerd.events.TaskPaused");
  EXPECT_EQ(ev::TaskResumed().GetTypeName(), "containerd.events.TaskResumed");
  EXPECT_EQ(ev::TaskCheckpointed().GetTypeName(), "containerd.events.TaskCheckpointed");
  EXPECT_EQ(io::containerd::cgroups::v1::Metrics().GetTypeName(),
            "io.containerd.cgroups.v1.Metrics");
  EXPECT_EQ(io::containerd::cgroups::v2::Metrics().GetTypeName(),
            "io.containerd.cgroups.v2.Metrics");
  EXPECT_EQ(runtimeoptions::v1::Options().GetTypeName(), "runtimeoptions.v1.Options");
}

TEST(ContainerdProto, TaskExitEncodesLikeContainerd) {
  containerd::events::TaskExit exit;
  exit.set_container_id("c1");
  exit.set_id("c1");
  exit.set_pid(42);
  exit.set_exit_status(137);
  exit.mutable_exited_at()->set_seconds(1700000000);
  exit.mutable_exited_at()->set_nanos(5);
  // 0a02"c1" 1202"c1" 18 2a 20 8901 2a08 {08 80e2cfaa06 10 05}
  EXPECT_EQ(hex(exit.SerializeAsString()),
            "0a026331"
            "12026331"
            "182a"
            "208901"
            "2a08"
            "0880e2cfaa06"
            "1005");
}

TEST(ContainerdProto, CreateTaskRequestFieldNumbers) {
  task::CreateTaskRequest request;
  request.set_id("a");
  request.add_rootfs()->set_type("overlay");
  request.mutable_options()->set_type_url("x");
  // id=1, rootfs=3 {type=1}, options=10 {type_url=1}
  EXPECT_EQ(hex(request.SerializeAsString()),
            "0a0161"
            "1a09"
            "0a07" +
                hex("overlay") +
                "5203"
                "0a0178");
}

TEST(ContainerdProto, ParsesRuntimeOptionsAnyAsCriSendsIt) {
  // 53 bytes, the size containerd 1.6.20 sends for a 22-byte ConfigPath.
  const std::string bytes = unhex("0a19" + hex("runtimeoptions.v1.Options") +
                                  "1218"
                                  "1216" +
                                  hex("/etc/ember/config.toml"));
  ASSERT_EQ(bytes.size(), 53u);
  google::protobuf::Any any;
  ASSERT_TRUE(any.ParseFromString(bytes));
  EXPECT_EQ(any.type_url(), "runtimeoptions.v1.Options");
  runtimeoptions::v1::Options options;
  ASSERT_TRUE(options.ParseFromString(any.value()));
  EXPECT_EQ(options.config_path(), "/etc/ember/config.toml");
}

TEST(ContainerdProto, CgroupV2MetricsFieldsCriReads) {
  io::containerd::cgroups::v2::Metrics metrics;
  metrics.mutable_cpu()->set_usage_usec(1000);
  metrics.mutable_memory()->set_usage(4096);
  metrics.mutable_memory()->set_inactive_file(1024);
  metrics.mutable_memory()->set_usage_limit(8192);
  // cpu=2 {usage_usec=1}; memory=4 {inactive_file=13, usage=32, usage_limit=33}
  EXPECT_EQ(hex(metrics.SerializeAsString()),
            "1203"
            "08e807"
            "220b"
            "688008"
            "80028020"
            "88028040");
}

TEST(ContainerdProto, CgroupV1MetricsFieldsCriReads) {
  io::containerd::cgroups::v1::Metrics metrics;
  metrics.mutable_cpu()->mutable_usage()->set_total(5);
  metrics.mutable_memory()->mutable_usage()->set_usage(7);
  metrics.mutable_memory()->set_total_inactive_file(3);
  // cpu=3 {usage=1 {total=1}}; memory=4 {total_inactive_file=30, usage=33 {usage=2}}
  EXPECT_EQ(hex(metrics.SerializeAsString()),
            "1a04"
            "0a020805"
            "2208"
            "f00103"
            "8a02021007");
}

// A Task implementation served as task.v2 and task.v3 at once, called
// through both generated stubs.
class FakeTask : public task::TaskService {
 public:
  task::StateResponse State(ember::ttrpc::Context&, const task::StateRequest& request) override {
    if (request.id() != "c1") {
      throw ember::ttrpc::StatusError(ember::ttrpc::Code::kNotFound, request.id() + " not found");
    }
    task::StateResponse reply;
    reply.set_id("c1");
    reply.set_status(containerd::v1::types::RUNNING);
    reply.set_pid(42);
    return reply;
  }
};

TEST(ContainerdProto, TaskServiceAnswersOnV2AndV3Names) {
  FakeTask impl;
  ember::ttrpc::Server server;
  server.register_service(impl);
  server.register_service(impl, std::string(containerd::task::v3::TaskService::kServiceName));
  auto [ours, theirs] = ember::ttrpc::testing::socket_pair();
  server.serve_connection(std::move(ours));
  ember::ttrpc::Client client(std::move(theirs));

  task::StateRequest request;
  request.set_id("c1");
  auto v2 = task::TaskClient(client).State(request);
  auto v3 = containerd::task::v3::TaskClient(client).State(request);
  EXPECT_EQ(v2.status(), containerd::v1::types::RUNNING);
  EXPECT_EQ(v3.pid(), 42u);

  request.set_id("nope");
  try {
    task::TaskClient(client).State(request);
    ADD_FAILURE() << "unknown id answered";
  } catch (const ember::ttrpc::StatusError& e) {
    EXPECT_EQ(e.code(), ember::ttrpc::Code::kNotFound);
  }
  try {
    task::TaskClient(client).Pause(task::PauseRequest());
    ADD_FAILURE() << "Pause answered";
  } catch (const ember::ttrpc::StatusError& e) {
    EXPECT_EQ(e.status().to_string(), "UNIMPLEMENTED: method Pause");
  }
}

}  // namespace
