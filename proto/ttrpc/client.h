// ttrpc client over any connected stream fd. Thread-safe: any number of
// threads may call concurrently; each call gets the next odd stream id and
// replies are matched by id, in whatever order they arrive. See README.md.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "proto/ttrpc/metadata.h"
#include "proto/ttrpc/status.h"
#include "vmm/common/unique_fd.h"

namespace ember::ttrpc {

struct CallOptions {
  // 0 = no timeout. Sent as Request.timeout_nano and enforced locally: the
  // call fails with DEADLINE_EXCEEDED when no reply came in time (a late
  // reply is dropped).
  std::chrono::nanoseconds timeout{0};
  Metadata metadata{};
};

struct ClientOptions {
  // Called once, on the client's IO thread, when the connection ends: by
  // close() (CANCELLED), by the peer or an IO error (UNAVAILABLE).
  std::function<void(const Status& why)> on_close{};
};

class Client {
 public:
  using Callback = std::function<void(Status status, std::string payload)>;

  explicit Client(common::UniqueFd connected_fd, ClientOptions options = {});
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  // close(), then joins the IO thread. Must not run on the IO thread (i.e.
  // not from a callback).
  ~Client();

  // Blocking unary call: returns the reply payload or throws StatusError.
  // Throws std::logic_error when called from the IO thread (a callback).
  std::string call(std::string_view service, std::string_view method, std::string payload,
                   const CallOptions& options = {});

  // Asynchronous unary call: `done` runs exactly once, on the IO thread; it
  // must not block.
  void call_async(std::string_view service, std::string_view method, std::string payload,
                  const CallOptions& options, Callback done);

  // Fails pending and later calls with CANCELLED "ttrpc: client closed".
  // Idempotent; callable from any thread including callbacks.
  void close();
  // True once closed locally or by the peer.
  bool closed() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// Typed helpers used by generated `<Name>Client` stubs.
template <class Reply, class Request>
Reply unary_call(Client& client, std::string_view service, std::string_view method,
                 const Request& request, const CallOptions& options) {
  std::string payload = client.call(service, method, request.SerializeAsString(), options);
  Reply reply;
  if (!reply.ParseFromString(payload)) {
    throw StatusError(Code::kInternal, "ttrpc: reply of " + std::string(service) + "/" +
                                           std::string(method) + " is not a valid " +
                                           reply.GetTypeName());
  }
  return reply;
}

template <class Reply, class Request>
void unary_call_async(Client& client, std::string_view service, std::string_view method,
                      const Request& request, const CallOptions& options,
                      std::function<void(Status, Reply)> done) {
  client.call_async(
      service, method, request.SerializeAsString(), options,
      [done = std::move(done), what = std::string(service) + "/" + std::string(method)](
          Status status, std::string payload) {
        Reply reply;
        if (status.ok() && !reply.ParseFromString(payload)) {
          status = Status{Code::kInternal,
                          "ttrpc: reply of " + what + " is not a valid " + reply.GetTypeName()};
          reply.Clear();
        }
        done(std::move(status), std::move(reply));
      });
}

}  // namespace ember::ttrpc
