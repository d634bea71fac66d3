// Task events to containerd (reference §3.2): ttrpc
// `containerd.services.events.ttrpc.v1.Events/Forward` on $TTRPC_ADDRESS,
// one Envelope per event, Any.type_url = the bare message name
// ("containerd.events.TaskExit") because containerd's subscribers (ctr, CRI)
// cannot decode the "type.googleapis.com/" form.
//
// publish() only enqueues: an RPC never waits for event delivery. One thread
// delivers in publish order, head of line: an event that fails is retried
// (re-dialing, since containerd may have restarted) up to `max_attempts`
// times with a growing back-off before it is dropped and logged, so the
// ordering containerd relies on (TaskCreate < TaskStart < TaskOOM < TaskExit
// < TaskDelete) holds on the wire too.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <google/protobuf/message.h>

#include "shim/log/shim_log.h"

namespace ember::ttrpc {
class Client;
}

namespace ember::shim {

// Where TaskService sends events. Implementations must not block.
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void publish(const google::protobuf::Message& event) = 0;
};

// "/tasks/exit" for containerd.events.TaskExit and so on; throws
// common::Error for a message that is not a task event.
std::string event_topic(const google::protobuf::Message& event);

struct EventPublisherOptions {
  std::string ttrpc_address;  // plain path or unix:// address ($TTRPC_ADDRESS)
  std::string ns;             // Envelope.namespace
  int max_attempts = 5;
  std::chrono::milliseconds backoff{1000};  // attempt n waits n * backoff
  std::chrono::milliseconds call_timeout{5000};
};

class EventPublisher : public EventSink {
 public:
  EventPublisher(EventPublisherOptions options, ShimLog& log);
  ~EventPublisher() override;  // close()
  EventPublisher(const EventPublisher&) = delete;
  EventPublisher& operator=(const EventPublisher&) = delete;

  void publish(const google::protobuf::Message& event) override;

  // Waits until every queued event was delivered or dropped; false on timeout.
  bool flush(std::chrono::milliseconds timeout);
  // Stops the thread; queued events are dropped (flush() first to deliver them).
  void close();

  uint64_t delivered() const;
  uint64_t dropped() const;

 private:
  struct Item {
    std::string topic;
    std::string type_url;
    std::string payload;
    std::chrono::system_clock::time_point timestamp;
  };
  void run();
  bool deliver(const Item& item);

  EventPublisherOptions options_;
  ShimLog& log_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Item> queue_;
  bool busy_ = false;  // the thread holds an item
  bool closing_ = false;
  uint64_t delivered_ = 0;
  uint64_t dropped_ = 0;
  std::unique_ptr<ttrpc::Client> client_;  // delivery thread only
  std::thread thread_;
};

}  // namespace ember::shim
