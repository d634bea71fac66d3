// The handoff between the API thread (fc_api) and the VMM thread: one queue
// each way, each with an eventfd, and nothing else shared
// (reference/firecracker-compat.md §1.1: "requests are serialised to the VMM
// thread (mpsc + eventfd)").
#pragma once

#include <deque>
#include <mutex>
#include <optional>

#include "vmm/api/vmm_action.h"
#include "vmm/common/event_fd.h"

namespace ember::vmm::api {

class ApiChannel {
 public:
  // VMM side: readable when a request is queued.
  int request_fd() const { return to_vmm_.fd(); }
  // Pops the next request (consuming one eventfd count), if any.
  std::optional<VmmAction> take_request();
  void send_response(VmmResponse response);

  // API side.
  void send_request(VmmAction action);
  // Blocks until the response arrives, or returns nullopt once `stop_fd`
  // becomes readable (the VMM thread is shutting down).
  std::optional<VmmResponse> wait_response(int stop_fd);

 private:
  common::EventFd to_vmm_;
  common::EventFd to_api_;
  std::mutex mutex_;
  std::deque<VmmAction> requests_;
  std::deque<VmmResponse> responses_;
};

}  // namespace ember::vmm::api
