// The API socket's life and the HTTP connection handling of a real
// ember-vmm: socket in use, socket removed at exit, keep-alive, pipelining,
// several clients, the connection limit, log lines.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "tests/integration/api_harness.h"
#include "vmm/common/error.h"

namespace ember::testing {
namespace {

TEST(ApiSocket, SocketInUseIsUpstreamsErrorAndExitCode1) {
  TempDir dir("ember-api-inuse");
  std::string path = (dir / "api.sock").string();
  common::UniqueFd holder(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  path.copy(addr.sun_path, sizeof addr.sun_path - 1);
  ASSERT_EQ(::bind(holder.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);

  EmberVmm vmm({"--api-sock", path, "--level", "Warning"});
  EXPECT_EQ(vmm.wait_exit(), 1);
  std::string out = vmm.stdout_text();
  EXPECT_NE(out.find("Failed to open the API socket at: " + path +
                     ". Check that it is not already used."),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("Firecracker exiting with error. exit_code=1"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(path)) << "someone else's socket must be left alone";
}

TEST(ApiSocket, SigtermStopsCleanlyAndRemovesTheSocket) {
  EmberVmm vmm({"--level", "Debug"});
  ASSERT_TRUE(vmm.wait_ready());
  EXPECT_TRUE(std::filesystem::exists(vmm.socket()));
  vmm.signal(SIGTERM);
  EXPECT_EQ(vmm.wait_exit(), 0);
  EXPECT_FALSE(std::filesystem::exists(vmm.socket()));
  EXPECT_NE(vmm.stdout_text().find("Firecracker exiting successfully. exit_code=0"),
            std::string::npos);
}

TEST(ApiSocket, FatalSignalsExitWithUpstreamsCodes) {
  // upstream's signal_handler.rs: SIGHUP -> 156, SIGXCPU -> 154, SIGBUS -> 149.
  for (auto [signo, code] :
       {std::pair{SIGHUP, 156}, std::pair{SIGXCPU, 154}, std::pair{SIGBUS, 149}}) {
    EmberVmm vmm;
    ASSERT_TRUE(vmm.wait_ready());
    vmm.signal(signo);
    EXPECT_EQ(vmm.wait_exit(), code);
    EXPECT_NE(vmm.stdout_text().find("Shutting down VM after intercepting signal " +
                                     std::to_string(signo) + ", code 0."),
              std::string::npos)
        << vmm.stdout_text();
  }
}

TEST(ApiSocket, LogPathGetsUpstreamsLinesInUpstreamsFormat) {
  TempDir dir("ember-api-log");
  std::string log = (dir / "fc.log").string();
  {
    EmberVmm vmm({"--log-path", log, "--level", "Debug", "--show-level", "--show-log-origin",
                  "--id", "log-test"});
    ASSERT_TRUE(vmm.wait_ready());
    ApiClient api = vmm.client();
    api.put("/machine-config", R"({"vcpu_count": 1, "mem_size_mib": 64})");
    vmm.signal(SIGTERM);
    ASSERT_EQ(vmm.wait_exit(), 0);
  }
  std::string text = read_file(log);
  for (const char* line :
       {"Running Firecracker v", "API server started.",
        "The API server received a Put request on \"/machine-config\" with body "
        "\"{\\\"vcpu_count\\\": 1, "
        "\\\"mem_size_mib\\\": 64}\".",
        "Total previous API call duration: ", "Firecracker exiting successfully. exit_code=0"})
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
  // 2026-11-26T21:33:00.123456789 [log-test:fc_api:INFO:vmm/api/...:NN] API server started.
  std::string started = text.substr(0, text.find("] API server started."));
  started = started.substr(started.rfind('\n') + 1);
  EXPECT_EQ(started.size() >= 30 && started[4] == '-' && started[10] == 'T' && started[19] == '.',
            true)
      << started;
  EXPECT_NE(started.find(" [log-test:fc_api:INFO:vmm/api/"), std::string::npos) << started;
}

TEST(ApiSocket, SeveralClientsAndPipelinedRequests) {
  EmberVmm vmm;
  ASSERT_TRUE(vmm.wait_ready());
  std::vector<ApiClient> clients;
  for (int i = 0; i < 10; ++i) {
    // wait_ready()'s probe connection may still be in the server's books
    // for a moment: a client turned away by the limit tries again.
    for (int attempt = 0;; ++attempt) {
      ApiClient c = vmm.client();
      HttpReply r;
      try {
        r = c.get("/");
      } catch (const common::Error&) {
      }
      if (r.status == 200) {
        clients.push_back(std::move(c));
        break;
      }
      ASSERT_LT(attempt, 100) << r.raw;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  for (int round = 0; round < 3; ++round)
    for (auto& c : clients) EXPECT_EQ(c.get("/").status, 200);
  ApiClient eleventh = vmm.client();
  eleventh.connect();
  HttpReply refused = eleventh.read_reply();
  EXPECT_EQ(refused.status, 503);
  EXPECT_EQ(refused.body, "{ \"error\": \"Too many open connections\" }");

  ApiClient& p = clients[0];
  p.send_raw(
      "PUT /machine-config HTTP/1.1\r\nContent-Length: 38\r\n\r\n{\"vcpu_count\": 2, "
      "\"mem_size_mib\": 512}"
      "GET /machine-config HTTP/1.1\r\n\r\nGET /version HTTP/1.1\r\n\r\n");
  EXPECT_EQ(p.read_reply().status, 204);
  HttpReply m = p.read_reply();
  EXPECT_EQ(nlohmann::json::parse(m.body)["mem_size_mib"], 512);
  EXPECT_EQ(p.read_reply().status, 200);
}

TEST(ApiSocket, ClientsTalkingAtOnceAllGetAnswers) {
  EmberVmm vmm;
  ASSERT_TRUE(vmm.wait_ready());
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      ApiClient c = vmm.client();
      for (int i = 0; i < 25; ++i)
        if (c.get("/machine-config").status == 200) ++ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 200);
}

}  // namespace
}  // namespace ember::testing
