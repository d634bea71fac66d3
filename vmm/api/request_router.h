// From an HTTP request to a VmmAction, the way Firecracker's
// parsed_request.rs routes: by method, first path segment and body presence,
// with its exact error texts ("Empty PUT request.", "Invalid request method
// and/or path: PUT foo.", "The ID cannot be empty.", serde's JSON errors),
// the "The API server received a ..." log line and the *_api_requests
// metrics. Endpoints of Firecracker that ember does not implement answer 400
// with a fault_message naming the feature.
#pragma once

#include <optional>
#include <string>

#include "vmm/api/http_request.h"
#include "vmm/api/http_response.h"
#include "vmm/api/vmm_action.h"
#include "vmm/logger/logger.h"
#include "vmm/logger/metrics.h"

namespace ember::vmm::api {

struct RoutedRequest {
  // Set when the VMM thread must act; otherwise `response` is the answer.
  std::optional<VmmAction> action;
  std::optional<HttpResponse> response;
  // Firecracker logs these as WARN and adds `Deprecation: true`.
  std::optional<std::string> deprecation;
};

class RequestRouter {
 public:
  RequestRouter(Logger& logger, Metrics& metrics) : logger_(logger), metrics_(metrics) {}

  // Never throws for any input (errors become 400 responses).
  RoutedRequest route(const HttpRequest& request);
  // The HTTP answer for the VMM's outcome, logged as upstream does.
  HttpResponse respond(const VmmResponse& outcome);

 private:
  RoutedRequest route_unchecked(const HttpRequest& request);
  RoutedRequest error(std::string message);
  void count(const char* group, const char* name);

  Logger& logger_;
  Metrics& metrics_;
};

// Firecracker's checked_id(): empty, or not [A-Za-z0-9_], is refused.
std::optional<std::string> check_resource_id(std::string_view id);

}  // namespace ember::vmm::api
