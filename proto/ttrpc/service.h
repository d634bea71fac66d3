// What a server dispatches to: raw handlers, and the Service interface the
// generated `<Name>Service` base classes implement.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proto/ttrpc/context.h"
#include "proto/ttrpc/status.h"

namespace ember::ttrpc {

// Serialized request in, serialized reply out. Runs on a handler thread and
// may block. Throw StatusError to answer with a status; any other exception
// answers UNKNOWN with its what().
using Handler = std::function<std::string(Context& ctx, std::string_view payload)>;

struct Method {
  std::string name;  // RPC name as in the .proto, e.g. "Create"
  Handler handler;
};

class Service {
 public:
  virtual ~Service() = default;
  // Full proto name, e.g. "containerd.task.v2.Task".
  virtual std::string_view service_name() const = 0;
  virtual std::vector<Method> methods() = 0;
};

// A Method for a unary RPC with protobuf messages: parses the request
// (INVALID_ARGUMENT when it doesn't parse), calls
// `fn(Context&, const Request&) -> Reply` and serializes the reply.
template <class Request, class Reply, class Fn>
Method unary_method(std::string name, Fn fn) {
  Handler handler = [fn = std::move(fn)](Context& ctx, std::string_view payload) -> std::string {
    Request request;
    if (!request.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
      throw StatusError(Code::kInvalidArgument, "ttrpc: request payload of " + ctx.service() + "/" +
                                                    ctx.method() + " is not a valid " +
                                                    request.GetTypeName());
    }
    Reply reply = fn(ctx, request);
    std::string out;
    if (!reply.SerializeToString(&out)) {
      throw StatusError(Code::kInternal, "ttrpc: cannot serialize the " + reply.GetTypeName() +
                                             " reply of " + ctx.service() + "/" + ctx.method());
    }
    return out;
  };
  return Method{std::move(name), std::move(handler)};
}

}  // namespace ember::ttrpc
