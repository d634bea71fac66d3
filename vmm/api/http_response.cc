#include "vmm/api/http_response.h"

#include "vmm/vmm_config/json.h"

namespace ember::vmm::api {

std::string HttpResponse::serialize() const {
  std::string out;
  out.reserve(128 + body.size());
  out += http10 ? "HTTP/1.0 " : "HTTP/1.1 ";
  out += std::to_string(status);
  out += " \r\nServer: Firecracker API\r\nConnection: keep-alive\r\n";
  if (deprecation) out += "Deprecation: true\r\n";
  if (status != 100 && status != 204) {
    out += "Content-Type: application/json\r\nContent-Length: ";
    out += std::to_string(body.size());
    out += "\r\n";
  }
  out += "\r\n";
  if (status != 100 && status != 204) out += body;
  return out;
}

HttpResponse json_response(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpResponse no_content() { return HttpResponse{}; }

HttpResponse fault(std::string_view message, int status) {
  return json_response(status, json::fault_message_json(message));
}

HttpResponse parse_error_response(std::string_view message) {
  std::string body = "{ \"error\": \"";
  body += message;
  body += "\nAll previous unanswered requests will be dropped.\" }";
  return json_response(400, std::move(body));
}

}  // namespace ember::vmm::api
