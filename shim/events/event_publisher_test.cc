#include "shim/events/event_publisher.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>

#include "containerd/events/task.pb.h"
#include "containerd/services/events/ttrpc/v1/events.ttrpc.pb.h"
#include "proto/ttrpc/server.h"

namespace ember::shim {
namespace {

namespace api = containerd::services::events::ttrpc::v1;

// containerd's side: a real ttrpc Events service on a real unix socket.
class RecordingEvents : public api::EventsService {
 public:
  google::protobuf::Empty Forward(ttrpc::Context&, const api::ForwardRequest& request) override {
    std::lock_guard lock(mutex_);
    envelopes_.push_back(request.envelope());
    changed_.notify_all();
    return {};
  }
  std::vector<api::Envelope> wait_for(size_t n) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, std::chrono::seconds(20), [&] { return envelopes_.size() >= n; });
    return envelopes_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<api::Envelope> envelopes_;
};

std::string temp_socket() {
  char tmpl[] = "/tmp/shim-events-test.XXXXXX";
  return std::string(::mkdtemp(tmpl)) + "/containerd.sock.ttrpc";
}

TEST(EventPublisher, ForwardsEnvelopesWithBareTypeUrlsTopicsAndNamespace) {
  std::string socket = temp_socket();
  RecordingEvents events;
  ttrpc::Server server;
  server.register_service(events);
  server.listen_unix(socket);
  ShimLog log;
  EventPublisher publisher({socket, "k8s.io"}, log);
  containerd::events::TaskExit exit;
  exit.set_container_id("web");
  exit.set_id("web");
  exit.set_exit_status(7);
  publisher.publish(exit);
  auto got = events.wait_for(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].namespace_(), "k8s.io");
  EXPECT_EQ(got[0].topic(), "/tasks/exit");
  EXPECT_EQ(got[0].event().type_url(), "containerd.events.TaskExit");
  containerd::events::TaskExit decoded;
  ASSERT_TRUE(decoded.ParseFromString(got[0].event().value()));
  EXPECT_EQ(decoded.exit_status(), 7u);
  EXPECT_GT(got[0].timestamp().seconds(), 0);
  server.shutdown();
  std::filesystem::remove_all(std::filesystem::path(socket).parent_path());
}

TEST(EventPublisher, KeepsOrderAndRedialsWhenContainerdComesBack) {
  std::string socket = temp_socket();
  ShimLog log;
  EventPublisherOptions options{socket, "default"};
  options.backoff = std::chrono::milliseconds(100);
  options.max_attempts = 20;
  EventPublisher publisher(options, log);
  // containerd is not there yet (restarting): events queue up in order.
  const char* topics[] = {"create", "start", "oom", "exit", "delete"};
  containerd::events::TaskCreate create;
  create.set_container_id("c");
  containerd::events::TaskStart start;
  start.set_container_id("c");
  containerd::events::TaskOOM oom;
  oom.set_container_id("c");
  containerd::events::TaskExit exit;
  exit.set_container_id("c");
  containerd::events::TaskDelete del;
  del.set_container_id("c");
  publisher.publish(create);
  publisher.publish(start);
  publisher.publish(oom);
  publisher.publish(exit);
  publisher.publish(del);
  std::this_thread::sleep_for(std::chrono::milliseconds(250));

  RecordingEvents events;
  ttrpc::Server server;
  server.register_service(events);
  server.listen_unix(socket);
  auto got = events.wait_for(5);
  ASSERT_EQ(got.size(), 5u);
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(got[i].topic(), std::string("/tasks/") + topics[i]);
  EXPECT_TRUE(publisher.flush(std::chrono::seconds(5)));
  EXPECT_EQ(publisher.delivered(), 5u);

  // containerd restarts: the publisher's connection breaks and is re-dialed.
  server.shutdown();
  std::filesystem::remove(socket);
  RecordingEvents events2;
  ttrpc::Server server2;
  server2.register_service(events2);
  server2.listen_unix(socket);
  publisher.publish(exit);
  EXPECT_EQ(events2.wait_for(1).size(), 1u);
  server2.shutdown();
  std::filesystem::remove_all(std::filesystem::path(socket).parent_path());
}

TEST(EventPublisher, DropsAnEventAfterItsAttemptsWithoutBlockingPublish) {
  ShimLog log;
  EventPublisherOptions options{"/nonexistent/containerd.sock.ttrpc", "default"};
  options.backoff = std::chrono::milliseconds(1);
  options.max_attempts = 2;
  EventPublisher publisher(options, log);
  containerd::events::TaskStart start;
  auto t0 = std::chrono::steady_clock::now();
  publisher.publish(start);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(100));
  EXPECT_TRUE(publisher.flush(std::chrono::seconds(5)));
  EXPECT_EQ(publisher.dropped(), 1u);
  EXPECT_EQ(publisher.delivered(), 0u);
}

TEST(EventTopic, MapsEveryTaskEvent) {
  EXPECT_EQ(event_topic(containerd::events::TaskExecAdded()), "/tasks/exec-added");
  EXPECT_EQ(event_topic(containerd::events::TaskExecStarted()), "/tasks/exec-started");
  EXPECT_EQ(event_topic(containerd::events::TaskPaused()), "/tasks/paused");
  EXPECT_EQ(event_topic(containerd::events::TaskResumed()), "/tasks/resumed");
  EXPECT_THROW(event_topic(containerd::events::TaskIO()), common::Error);
}

}  // namespace
}  // namespace ember::shim
