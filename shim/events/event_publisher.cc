#include "shim/events/event_publisher.h"

#include <google/protobuf/timestamp.pb.h>

#include "containerd/services/events/ttrpc/v1/events.ttrpc.pb.h"
#include "proto/ttrpc/client.h"
#include "proto/ttrpc/socket.h"
#include "proto/ttrpc/status.h"
#include "shim/bootstrap/shim_address.h"
#include "vmm/common/error.h"

namespace ember::shim {

namespace events_api = containerd::services::events::ttrpc::v1;

std::string event_topic(const google::protobuf::Message& event) {
  static const std::pair<const char*, const char*> kTopics[] = {
      {"containerd.events.TaskCreate", "/tasks/create"},
      {"containerd.events.TaskStart", "/tasks/start"},
      {"containerd.events.TaskExit", "/tasks/exit"},
      {"containerd.events.TaskDelete", "/tasks/delete"},
      {"containerd.events.TaskExecAdded", "/tasks/exec-added"},
      {"containerd.events.TaskExecStarted", "/tasks/exec-started"},
      {"containerd.events.TaskOOM", "/tasks/oom"},
      {"containerd.events.TaskPaused", "/tasks/paused"},
      {"containerd.events.TaskResumed", "/tasks/resumed"},
      {"containerd.events.TaskCheckpointed", "/tasks/checkpointed"},
  };
  const std::string& name = event.GetTypeName();
  for (const auto& [type, topic] : kTopics) {
    if (name == type) return topic;
  }
  throw common::Error("no event topic for message type " + name);
}

EventPublisher::EventPublisher(EventPublisherOptions options, ShimLog& log)
    : options_(std::move(options)), log_(log) {
  thread_ = std::thread([this] { run(); });
}

EventPublisher::~EventPublisher() { close(); }

void EventPublisher::publish(const google::protobuf::Message& event) {
  Item item{event_topic(event), event.GetTypeName(), event.SerializeAsString(), std::chrono::system_clock::now()};
  log_.debug("event queued", {{"topic", item.topic}});
  std::lock_guard lock(mutex_);
  if (closing_) return;
  queue_.push_back(std::move(item));
  changed_.notify_all();
}

bool EventPublisher::flush(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return closing_ || (queue_.empty() && !busy_); });
}

void EventPublisher::close() {
  {
    std::lock_guard lock(mutex_);
    if (closing_ && !thread_.joinable()) return;
    closing_ = true;
    changed_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

uint64_t EventPublisher::delivered() const {
  std::lock_guard lock(const_cast<std::mutex&>(mutex_));
  return delivered_;
}

uint64_t EventPublisher::dropped() const {
  std::lock_guard lock(const_cast<std::mutex&>(mutex_));
  return dropped_;
}

bool EventPublisher::deliver(const Item& item) {
  if (client_ && client_->closed()) client_.reset();
  if (!client_) {
    std::string path = parse_address(options_.ttrpc_address);
    if (path.empty()) path = options_.ttrpc_address;
    client_ = std::make_unique<ttrpc::Client>(ttrpc::dial_unix(path));
  }
  events_api::ForwardRequest request;
  auto* envelope = request.mutable_envelope();
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(item.timestamp.time_since_epoch()).count();
  envelope->mutable_timestamp()->set_seconds(ns / 1000000000);
  envelope->mutable_timestamp()->set_nanos(static_cast<int32_t>(ns % 1000000000));
  envelope->set_namespace_(options_.ns);
  envelope->set_topic(item.topic);
  envelope->mutable_event()->set_type_url(item.type_url);
  envelope->mutable_event()->set_value(item.payload);
  events_api::EventsClient stub(*client_);
  ttrpc::CallOptions call;
  call.timeout = options_.call_timeout;
  stub.Forward(request, call);
  return true;
}

void EventPublisher::run() {
  while (true) {
    Item item;
    {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [&] { return closing_ || !queue_.empty(); });
      if (closing_) break;
      item = queue_.front();
      busy_ = true;
    }
    bool ok = false;
    for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
      try {
        ok = deliver(item);
        break;
      } catch (const std::exception& e) {
        client_.reset();  // re-dial next time: containerd may have restarted
        log_.warn("publish event failed", {{"topic", item.topic}, {"attempt", attempt}, {"error", e.what()}});
        if (attempt == options_.max_attempts) break;
        std::unique_lock lock(mutex_);
        if (changed_.wait_for(lock, options_.backoff * attempt, [&] { return closing_; })) break;
      }
    }
    std::lock_guard lock(mutex_);
    if (!queue_.empty()) queue_.pop_front();
    busy_ = false;
    if (ok) {
      ++delivered_;
    } else {
      ++dropped_;
      log_.error("event dropped", {{"topic", item.topic}});
    }
    changed_.notify_all();
  }
  client_.reset();
  std::lock_guard lock(mutex_);
  busy_ = false;
  changed_.notify_all();
}

}  // namespace ember::shim
