#include "vmm/api/api_channel.h"

#include <poll.h>

#include <cerrno>

#include "vmm/common/error.h"

namespace ember::vmm::api {

std::optional<VmmAction> ApiChannel::take_request() {
  std::lock_guard lock(mutex_);
  if (requests_.empty()) {
    to_vmm_.consume();
    return std::nullopt;
  }
  VmmAction action = std::move(requests_.front());
  requests_.pop_front();
  if (requests_.empty()) to_vmm_.consume();
  return action;
}

void ApiChannel::send_response(VmmResponse response) {
  {
    std::lock_guard lock(mutex_);
    responses_.push_back(std::move(response));
  }
  to_api_.signal();
}

void ApiChannel::send_request(VmmAction action) {
  {
    std::lock_guard lock(mutex_);
    requests_.push_back(std::move(action));
  }
  to_vmm_.signal();
}

std::optional<VmmResponse> ApiChannel::wait_response(int stop_fd) {
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      if (!responses_.empty()) {
        VmmResponse r = std::move(responses_.front());
        responses_.pop_front();
        if (responses_.empty()) to_api_.consume();
        return r;
      }
    }
    pollfd fds[2] = {{to_api_.fd(), POLLIN, 0}, {stop_fd, POLLIN, 0}};
    int n = ::poll(fds, 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      common::throw_errno("poll for the VMM's answer");
    }
    if (fds[1].revents) return std::nullopt;
    to_api_.consume();
  }
}

}  // namespace ember::vmm::api
