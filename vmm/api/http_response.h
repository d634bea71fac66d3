// Firecracker's API response bytes (micro_http), which clients and upstream
// tests compare byte for byte (reference/firecracker-compat.md §1.1):
//   HTTP/1.1 <code> \r\n            (no reason phrase, trailing space)
//   Server: Firecracker API\r\n
//   Connection: keep-alive\r\n
//   [Deprecation: true\r\n]
//   [Content-Type: application/json\r\nContent-Length: N\r\n]   (not for 100/204)
//   \r\n<body>
#pragma once

#include <string>
#include <string_view>

namespace ember::vmm::api {

struct HttpResponse {
  int status = 204;
  std::string body;
  bool deprecation = false;
  bool http10 = false;  // only the 100 Continue interim answer echoes HTTP/1.0

  std::string serialize() const;
};

// 200 with a JSON body, 204, and the {"fault_message": ...} error.
HttpResponse json_response(int status, std::string body);
HttpResponse no_content();
HttpResponse fault(std::string_view message, int status = 400);
// micro_http's answer to a request it could not parse (note the key `error`
// and the literal newline inside the JSON string, as upstream sends it).
HttpResponse parse_error_response(std::string_view message);
// micro_http's fixed answer when more than 10 connections are open.
inline constexpr std::string_view kServerFullResponse =
    "HTTP/1.1 503\r\nServer: Firecracker API\r\nConnection: close\r\nContent-Length: 40\r\n\r\n"
    "{ \"error\": \"Too many open connections\" }";

}  // namespace ember::vmm::api
