#include "vmm/api/http_request.h"

#include <gtest/gtest.h>

#include <cstdio>

#include "vmm/api/http_response.h"

namespace ember::vmm::api {
namespace {

using Kind = HttpRequestParser::Result::Kind;

TEST(HttpRequestParser, GetWithoutBody) {
  HttpRequestParser p;
  auto r = p.feed("GET /machine-config HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n");
  ASSERT_EQ(r.kind, Kind::kRequest);
  EXPECT_EQ(r.request.method, HttpMethod::kGet);
  EXPECT_EQ(r.request.uri, "/machine-config");
  EXPECT_FALSE(r.request.body.has_value());
  EXPECT_EQ(p.feed({}).kind, Kind::kNeedMore);
}

TEST(HttpRequestParser, PutBodyArrivingByteByByte) {
  HttpRequestParser p;
  std::string text = "PUT /boot-source HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
  for (size_t i = 0; i + 1 < text.size(); ++i)
    ASSERT_EQ(p.feed(text.substr(i, 1)).kind, Kind::kNeedMore) << i;
  auto r = p.feed(text.substr(text.size() - 1));
  ASSERT_EQ(r.kind, Kind::kRequest);
  EXPECT_EQ(r.request.body, "hello");
}

TEST(HttpRequestParser, PipelinedRequestsComeOutInOrder) {
  HttpRequestParser p;
  auto r = p.feed(
      "PUT /a HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"
      "GET /b HTTP/1.1\r\n\r\n"
      "PATCH /c HTTP/1.0\r\ncontent-length: 1\r\n\r\nx");
  ASSERT_EQ(r.kind, Kind::kRequest);
  EXPECT_EQ(r.request.uri, "/a");
  r = p.feed({});
  ASSERT_EQ(r.kind, Kind::kRequest);
  EXPECT_EQ(r.request.uri, "/b");
  r = p.feed({});
  ASSERT_EQ(r.kind, Kind::kRequest);
  EXPECT_EQ(r.request.method, HttpMethod::kPatch);
  EXPECT_TRUE(r.request.http10);
  EXPECT_EQ(r.request.body, "x");
  EXPECT_EQ(p.feed({}).kind, Kind::kNeedMore);
}

TEST(HttpRequestParser, OversizedBodyIsRefusedSkippedAndTheConnectionGoesOn) {
  HttpRequestParser p(250);
  auto r = p.feed("PUT /mmds/config HTTP/1.1\r\nContent-Length: 260\r\n\r\nsome body");
  ASSERT_EQ(r.kind, Kind::kError);
  EXPECT_EQ(r.error,
            "Request payload with size 260 is larger than the limit of 250 allowed by server.");
  EXPECT_FALSE(r.fatal);
  EXPECT_EQ(p.feed(std::string(251, 'x')).kind, Kind::kNeedMore);
  r = p.feed("GET / HTTP/1.1\r\n\r\n");
  ASSERT_EQ(r.kind, Kind::kRequest);
  EXPECT_EQ(r.request.uri, "/");
}

TEST(HttpRequestParser, MalformedRequestLinesUseMicroHttpMessages) {
  struct Case {
    const char* input;
    const char* error;
  } cases[] = {
      {"POST / HTTP/1.1\r\n\r\n", "Invalid HTTP Method: Unsupported HTTP method."},
      {"GET / HTTP/2.0\r\n\r\n", "Invalid HTTP Version: Unsupported HTTP version."},
      {"GET  HTTP/1.1\r\n\r\n", "Invalid URI: Empty URI not allowed."},
      {"GET /\r\n\r\n", "Invalid request."},
      {"GET /\xff HTTP/1.1\r\n\r\n", "Invalid URI: Cannot parse URI as UTF-8."},
      {"GET / HTTP/1.1\r\nNoColonHere\r\n\r\n",
       "Invalid header. Reason: Header is incorrectly formatted. Key: NoColonHere"},
      {"PUT / HTTP/1.1\r\nContent-Length: 12x\r\n\r\n",
       "Invalid header. Reason: Invalid value. Key:Content-Length; Value: 12x"},
      {"GET / HTTP/1.1\r\nAccept-Encoding: identity;q=0\r\n\r\n",
       "Invalid header. Reason: Invalid value. Key:Accept-Encoding; Value:identity;q=0"},
  };
  for (const auto& c : cases) {
    HttpRequestParser p;
    auto r = p.feed(c.input);
    ASSERT_EQ(r.kind, Kind::kError) << c.input;
    EXPECT_EQ(r.error, c.error);
    EXPECT_TRUE(r.fatal);
  }
}

TEST(HttpRequestParser, EndlessLinesAreRefusedNotBuffered) {
  HttpRequestParser p;
  auto r = p.feed("GET /" + std::string(9000, 'a'));
  EXPECT_EQ(r.kind, Kind::kError);
  HttpRequestParser q;
  q.feed("GET / HTTP/1.1\r\n");
  EXPECT_EQ(q.feed("X-Long: " + std::string(9000, 'a')).kind, Kind::kError);
}

TEST(HttpRequestParser, ChunkedBodiesAreDecoded) {
  HttpRequestParser p;
  std::string second = "ion_type\": \"InstanceStart\"}";
  char size[16];
  std::snprintf(size, sizeof size, "%zx", second.size());
  auto r = p.feed(
      "PUT /actions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;ext=1\r\n{\"act\r\n" +
      std::string(size) + "\r\n" + second + "\r\n0\r\nTrailer: x\r\n\r\n");
  ASSERT_EQ(r.kind, Kind::kRequest);
  EXPECT_EQ(r.request.body, "{\"action_type\": \"InstanceStart\"}");
}

TEST(HttpRequestParser, ChunkedBodiesObeyThePayloadLimit) {
  HttpRequestParser p(10);
  auto r = p.feed("PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n");
  ASSERT_EQ(r.kind, Kind::kError);
  EXPECT_EQ(r.error,
            "Request payload with size 16 is larger than the limit of 10 allowed by server.");
  EXPECT_TRUE(r.fatal);
  HttpRequestParser q;
  EXPECT_EQ(q.feed("PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").kind,
            Kind::kError);
}

TEST(HttpRequestParser, ExpectContinueIsAnsweredBeforeTheBody) {
  HttpRequestParser p;
  auto r = p.feed("PUT /drives/a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
  EXPECT_EQ(r.kind, Kind::kContinue);
  r = p.feed("{}");
  ASSERT_EQ(r.kind, Kind::kRequest);
  EXPECT_EQ(r.request.body, "{}");
}

TEST(HttpRequestParser, ZeroContentLengthMeansNoBody) {
  HttpRequestParser p;
  auto r = p.feed("PUT /actions HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  ASSERT_EQ(r.kind, Kind::kRequest);
  EXPECT_FALSE(r.request.body.has_value());
}

TEST(HttpRequest, AbsolutePathFollowsMicroHttp) {
  HttpRequest r;
  r.uri = "http://localhost/drives/x";
  EXPECT_EQ(r.abs_path(), "/drives/x");
  r.uri = "http://localhost";
  EXPECT_EQ(r.abs_path(), "");
  r.uri = "*";
  EXPECT_EQ(r.abs_path(), "");
  r.uri = "/vm";
  EXPECT_EQ(r.abs_path(), "/vm");
}

TEST(HttpResponse, BytesMatchFirecracker) {
  EXPECT_EQ(no_content().serialize(),
            "HTTP/1.1 204 \r\nServer: Firecracker API\r\nConnection: keep-alive\r\n\r\n");
  HttpResponse ok = json_response(200, "{}");
  ok.deprecation = true;
  EXPECT_EQ(
      ok.serialize(),
      "HTTP/1.1 200 \r\nServer: Firecracker API\r\nConnection: keep-alive\r\nDeprecation: true\r\n"
      "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
  // Upstream's test_config_start_with_limit compares exactly these bytes.
  std::string expected =
      "HTTP/1.1 400 \r\nServer: Firecracker API\r\nConnection: keep-alive\r\nContent-Type: "
      "application/json\r\n"
      "Content-Length: 145\r\n\r\n{ \"error\": \"Request payload with size 260 is larger than the "
      "limit of 250 "
      "allowed by server.\nAll previous unanswered requests will be dropped.\" }";
  EXPECT_EQ(parse_error_response(
                "Request payload with size 260 is larger than the limit of 250 allowed by server.")
                .serialize(),
            expected);
}

}  // namespace
}  // namespace ember::vmm::api
