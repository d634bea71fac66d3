#include "vmm/api/api_server.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include "vmm/api/controller.h"
#include "vmm/api/fake_vmm.h"
#include "vmm/common/error.h"

namespace ember::vmm::api {
namespace {

// A raw unix-socket HTTP client: what goes over the wire is what the test says.
class RawClient {
 public:
  explicit RawClient(const std::string& path)
      : fd_(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path.copy(addr.sun_path, sizeof addr.sun_path - 1);
    if (::connect(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      common::throw_errno("connect");
  }
  void send(const std::string& bytes) {
    ASSERT_EQ(::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(bytes.size()));
  }
  void shutdown_write() { ::shutdown(fd_.get(), SHUT_WR); }
  // Reads one response (status line, headers, Content-Length body).
  std::string response(int timeout_ms = 5000) {
    for (;;) {
      size_t end = buf_.find("\r\n\r\n");
      if (end != std::string::npos) {
        size_t length = 0;
        size_t cl = buf_.find("Content-Length: ");
        if (cl != std::string::npos && cl < end) length = std::stoul(buf_.substr(cl + 16));
        if (buf_.size() >= end + 4 + length) {
          std::string r = buf_.substr(0, end + 4 + length);
          buf_.erase(0, end + 4 + length);
          return r;
        }
      }
      if (!fill(timeout_ms)) return "<closed> " + buf_;
    }
  }
  // True when the server closed the connection (after any buffered data).
  bool closed(int timeout_ms = 5000) { return buf_.empty() && !fill(timeout_ms); }

 private:
  bool fill(int timeout_ms) {
    pollfd p{fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return false;
    char tmp[4096];
    ssize_t n = ::read(fd_.get(), tmp, sizeof tmp);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }
  common::UniqueFd fd_;
  std::string buf_;
};

std::string put(const std::string& path, const std::string& body) {
  return "PUT " + path + " HTTP/1.1\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

std::string chunk(const std::string& data) {
  char size[16];
  std::snprintf(size, sizeof size, "%zx", data.size());
  return std::string(size) + "\r\n" + data + "\r\n";
}

class ApiServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = ::testing::TempDir() + "/api_server_test_" + std::to_string(::getpid()) + ".sock";
    ::unlink(path_.c_str());
    LoggerConfig quiet;
    quiet.level = LogLevel::kOff;
    logger_.configure(quiet);
    ControllerOptions o;
    o.version = "1.2.3";
    o.start_vmm = [](const VmResources& r, Logger&, Metrics&) {
      return std::make_unique<testing::FakeVmm>(r);
    };
    controller_ = std::make_unique<Controller>(o, logger_, metrics_);
    ApiServerOptions options;
    options.max_payload = max_payload_;
    server_ =
        std::make_unique<ApiServer>(bind_api_socket(path_), options, channel_, logger_, metrics_);
    server_->start();
    vmm_thread_ = std::thread([this] {
      while (!stop_) {
        pollfd p{channel_.request_fd(), POLLIN, 0};
        if (::poll(&p, 1, 20) > 0)
          while (auto a = channel_.take_request()) channel_.send_response(controller_->handle(*a));
      }
    });
  }
  void TearDown() override {
    server_->stop();
    stop_ = true;
    vmm_thread_.join();
    ::unlink(path_.c_str());
  }

  size_t max_payload_ = 51200;
  std::string path_;
  Logger logger_;
  Metrics metrics_;
  ApiChannel channel_;
  std::unique_ptr<Controller> controller_;
  std::unique_ptr<ApiServer> server_;
  std::thread vmm_thread_;
  std::atomic<bool> stop_{false};
};

TEST_F(ApiServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  RawClient c(path_);
  for (int i = 0; i < 3; ++i) {
    c.send("GET /version HTTP/1.1\r\nHost: localhost\r\n\r\n");
    EXPECT_EQ(c.response(),
              "HTTP/1.1 200 \r\nServer: Firecracker API\r\nConnection: keep-alive\r\nContent-Type: "
              "application/json\r\n"
              "Content-Length: 31\r\n\r\n{\"firecracker_version\":\"1.2.3\"}");
  }
}

TEST_F(ApiServerTest, PipelinedRequestsAreAnsweredInOrder) {
  RawClient c(path_);
  c.send(put("/machine-config", R"({"vcpu_count": 2, "mem_size_mib": 64})") +
         "GET /machine-config HTTP/1.1\r\n\r\n"
         "PUT /actions HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  EXPECT_NE(c.response().find("HTTP/1.1 204 "), std::string::npos);
  EXPECT_NE(c.response().find("\"vcpu_count\":2,\"mem_size_mib\":64"), std::string::npos);
  EXPECT_NE(c.response().find("Empty PUT request."), std::string::npos);
}

TEST_F(ApiServerTest, GarbageGetsA400AndTheConnectionIsClosed) {
  RawClient c(path_);
  c.send("HELLO THERE\r\n\r\n");
  std::string r = c.response();
  EXPECT_NE(r.find("HTTP/1.1 400 "), std::string::npos);
  EXPECT_NE(
      r.find(
          "{ \"error\": \"Invalid request.\nAll previous unanswered requests will be dropped.\" }"),
      std::string::npos)
      << r;
  EXPECT_TRUE(c.closed());
  // The server is still there for others.
  RawClient d(path_);
  d.send("GET / HTTP/1.1\r\n\r\n");
  EXPECT_NE(d.response().find("\"state\":\"Not started\""), std::string::npos);
}

TEST_F(ApiServerTest, OversizedBodyGetsTheRawErrorAndTheConnectionStaysUsable) {
  RawClient c(path_);
  std::string body(51201, 'x');
  c.send("PUT /mmds/config HTTP/1.1\r\nContent-Length: 51201\r\nAccept: application/json\r\n\r\n" +
         body);
  std::string r = c.response();
  EXPECT_EQ(r,
            "HTTP/1.1 400 \r\nServer: Firecracker API\r\nConnection: keep-alive\r\nContent-Type: "
            "application/json\r\n"
            "Content-Length: 149\r\n\r\n{ \"error\": \"Request payload with size 51201 is larger "
            "than the limit of "
            "51200 allowed by server.\nAll previous unanswered requests will be dropped.\" }");
  c.send("GET / HTTP/1.1\r\n\r\n");
  EXPECT_NE(c.response().find("HTTP/1.1 200 "), std::string::npos);
}

TEST_F(ApiServerTest, EleventhConnectionIsTurnedAway) {
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < 10; ++i) {
    clients.push_back(std::make_unique<RawClient>(path_));
    clients.back()->send("GET / HTTP/1.1\r\n\r\n");
    ASSERT_NE(clients.back()->response().find("HTTP/1.1 200 "), std::string::npos);
  }
  RawClient extra(path_);
  EXPECT_EQ(
      extra.response(),
      "HTTP/1.1 503\r\nServer: Firecracker API\r\nConnection: close\r\nContent-Length: 40\r\n\r\n"
      "{ \"error\": \"Too many open connections\" }");
  clients.pop_back();
  // A slot frees up once a client leaves.
  for (int attempt = 0; attempt < 50; ++attempt) {
    RawClient again(path_);
    again.send("GET / HTTP/1.1\r\n\r\n");
    std::string r = again.response();
    if (r.find("HTTP/1.1 200 ") != std::string::npos) return;
    ::usleep(20000);
  }
  FAIL() << "no connection slot came back";
}

TEST_F(ApiServerTest, HalfClosedClientStillGetsItsAnswer) {
  RawClient c(path_);
  c.send("GET /version HTTP/1.1\r\n\r\n");
  c.shutdown_write();
  EXPECT_NE(c.response().find("\"firecracker_version\""), std::string::npos);
  EXPECT_TRUE(c.closed());
}

TEST_F(ApiServerTest, DeprecatedFieldAddsTheHeader) {
  RawClient c(path_);
  std::string body = R"({"vcpu_count": 1, "mem_size_mib": 128, "cpu_template": "None"})";
  c.send("PUT /machine-config HTTP/1.1\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body);
  EXPECT_EQ(c.response(),
            "HTTP/1.1 204 \r\nServer: Firecracker API\r\nConnection: keep-alive\r\nDeprecation: "
            "true\r\n\r\n");
}

TEST_F(ApiServerTest, ChunkedBodyIsAccepted) {
  RawClient c(path_);
  c.send("PUT /machine-config HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" +
         chunk(R"({"vcpu_count": 4)") + chunk(R"(, "mem_size_mib": 256})") + "0\r\n\r\n");
  EXPECT_NE(c.response().find("HTTP/1.1 204 "), std::string::npos);
  c.send("GET /machine-config HTTP/1.1\r\n\r\n");
  EXPECT_NE(c.response().find("\"vcpu_count\":4"), std::string::npos);
}

}  // namespace
}  // namespace ember::vmm::api
