// Hostile input at a live ember-vmm socket: random bytes, broken HTTP,
// mutated JSON bodies, giant and endless lines, half-sent requests and
// abrupt disconnects. The process must answer each parseable request with a
// 400 that names the problem (or a success), never crash or hang, and serve
// a normal client afterwards.
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "tests/integration/api_harness.h"
#include "vmm/common/error.h"

namespace ember::testing {
namespace {

const char* const kPaths[] = {"/",
                              "/version",
                              "/actions",
                              "/boot-source",
                              "/machine-config",
                              "/cpu-config",
                              "/drives/rootfs",
                              "/drives/",
                              "/network-interfaces/eth0",
                              "/vsock",
                              "/entropy",
                              "/vm",
                              "/vm/config",
                              "/balloon/statistics",
                              "/mmds",
                              "/snapshot/load",
                              "/hotplug/memory",
                              "http://localhost/drives/x/y",
                              "*",
                              "/%00"};
const char* const kMethods[] = {"GET", "PUT", "PATCH", "DELETE", "POST", "get", "", "PUT PUT"};
// Bodies whose mutations stay near the API's grammar. No logger/metrics
// bodies: a mutation must never make the VMM create files.
const char* const kBodies[] = {
    R"({"action_type": "InstanceStart"})",
    R"({"kernel_image_path": "/nonexistent/vmlinux", "boot_args": "console=ttyS0"})",
    R"({"vcpu_count": 2, "mem_size_mib": 256, "smt": false, "huge_pages": "2M"})",
    R"({"drive_id": "rootfs", "path_on_host": "/nonexistent.img", "is_root_device": true,
        "rate_limiter": {"bandwidth": {"size": 1, "refill_time": 2}, "ops": null}})",
    R"({"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "06:00:00:00:00:01", "mtu": 1500})",
    R"({"guest_cid": 3, "uds_path": "/nonexistent/dir/v.sock"})",
    R"({"state": "Paused"})",
    R"({"cpuid_modifiers": [{"leaf": "0x1", "subleaf": "0x0", "flags": 0,
        "modifiers": [{"register": "eax", "bitmap": "0bx1"}]}]})",
    R"([[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]])",
    "{\"a\": \"\\ud83d\\ude00\\u0000\\uZZZZ\"}",
    "18446744073709551616e99999",
};

std::string mutate(std::string s, std::mt19937& rng) {
  std::uniform_int_distribution<int> op(0, 5), byte(0, 255);
  int n = std::uniform_int_distribution<int>(0, 4)(rng);
  for (int i = 0; i < n && !s.empty(); ++i) {
    size_t at = std::uniform_int_distribution<size_t>(0, s.size() - 1)(rng);
    switch (op(rng)) {
      case 0:
        s[at] = static_cast<char>(byte(rng));
        break;
      case 1:
        s.erase(at, 1);
        break;
      case 2:
        s.insert(at, 1, "{}[]\",:\\ 0-e."[byte(rng) % 14]);
        break;
      case 3:
        s.resize(at);
        break;
      case 4:
        s.insert(at, s.substr(0, at));
        break;
      default:
        break;
    }
  }
  return s;
}

std::string random_request(std::mt19937& rng) {
  auto pick = [&](const auto& list) {
    return list[std::uniform_int_distribution<size_t>(0, std::size(list) - 1)(rng)];
  };
  std::string body =
      std::uniform_int_distribution<int>(0, 3)(rng) ? mutate(pick(kBodies), rng) : "";
  std::string req = std::string(pick(kMethods)) + " " + pick(kPaths) + " HTTP/1.1\r\n";
  switch (std::uniform_int_distribution<int>(0, 6)(rng)) {
    case 0:
      req += "Content-Length: " + std::to_string(body.size() + 3) + "\r\n\r\n" + body;
      break;  // short body
    case 1:
      req += "Transfer-Encoding: chunked\r\n\r\n" + body + "\r\n0\r\n\r\n";
      break;  // bad chunks
    case 2:
      req += "Content-Length: -1\r\n\r\n";
      break;
    case 3:
      req += "Expect: 100-continue\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
             body;
      break;
    default:
      req += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
      break;
  }
  return std::uniform_int_distribution<int>(0, 9)(rng) ? req : mutate(req, rng);
}

size_t open_fds(pid_t pid) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& entry :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd"))
    ++n;
  return n;
}

// GET / on `client`, reconnecting while the server answers 503: it caps open
// connections, and the ones the test hung up are released as their hang-ups
// are processed.
HttpReply get_once_connections_drain(ApiClient& client) {
  HttpReply r;
  for (int attempt = 0; attempt < 100; ++attempt) {
    client.disconnect();
    r = client.get("/");
    if (r.status != 503) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return r;
}

// Sends what a hostile client sends. EPIPE is an answer, not a test failure:
// the server may close the connection first (a 503 at its connection cap,
// a 400 at the first unparseable byte, a client that never reads).
void send_ignoring_hangup(ApiClient& client, const std::string& bytes) {
  try {
    client.send_raw(bytes);
  } catch (const common::Error&) {
  }
}

TEST(ApiGarbage, HostileInputNeverTakesTheVmmDown) {
  EmberVmm vmm({"--level", "Error"});
  ASSERT_TRUE(vmm.wait_ready());
  // Baseline with the API thread up and one client connected.
  ApiClient probe = vmm.client();
  ASSERT_EQ(probe.get("/").status, 200);
  const size_t baseline_fds = open_fds(vmm.pid());
  probe.disconnect();
  unsigned seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);

  // 1. Random requests, one connection each, answers read if any.
  std::map<int, int> statuses;
  for (int i = 0; i < 1500; ++i) {
    ApiClient c = vmm.client();
    try {
      c.send_raw(random_request(rng));
      // A half-close tells the server nothing more is coming, so a request
      // missing bytes ends the connection instead of waiting for them.
      c.finish_sending();
      HttpReply r = c.read_reply(std::chrono::milliseconds(5000));
      ++statuses[r.status];
      if (r.status != 0) {
        EXPECT_TRUE(r.status == 100 || r.status == 200 || r.status == 204 || r.status == 400)
            << r.raw;
        if (r.status == 400) {
          EXPECT_FALSE(r.body.empty());
        }
      }
    } catch (const common::Error&) {
      // The server may close a connection whose bytes cannot be parsed.
      ++statuses[-1];
    }
  }
  std::string histogram;
  for (const auto& [status, n] : statuses)
    histogram += " " + std::to_string(status) + ":" + std::to_string(n);
  std::printf("answers by status (-1: connection refused or reset, 0: none):%s\n",
              histogram.c_str());
  EXPECT_GT(statuses[400], 500) << "most random requests must reach the parser and be refused";
  // 2. Pure noise, endless lines, header floods, half requests, hang-ups.
  std::uniform_int_distribution<int> byte(0, 255);
  for (int i = 0; i < 30; ++i) {
    ApiClient c = vmm.client();
    std::string noise(static_cast<size_t>(std::uniform_int_distribution<int>(1, 20000)(rng)), '\0');
    for (auto& ch : noise) ch = static_cast<char>(byte(rng));
    send_ignoring_hangup(c, noise);
  }
  {
    // The noise connections may still be being torn down.
    ApiClient c = vmm.client();
    ASSERT_EQ(get_once_connections_drain(c).status, 200);
    // The server refuses the line at its limit and may close before reading
    // the rest; its answer is still in our receive queue.
    send_ignoring_hangup(c, "GET /" + std::string(100000, 'a'));
    HttpReply r = c.read_reply();
    EXPECT_EQ(r.status, 400);
  }
  {
    ApiClient c = vmm.client();
    ASSERT_EQ(get_once_connections_drain(c).status, 200);
    std::string flood = "GET / HTTP/1.1\r\n";
    for (int i = 0; i < 20000; ++i) flood += "X-Header-" + std::to_string(i) + ": value\r\n";
    c.send_raw(flood + "\r\n");
    EXPECT_EQ(c.read_reply().status, 200) << "many headers are fine: none is kept";
  }
  for (int i = 0; i < 20; ++i) {
    ApiClient c = vmm.client();
    send_ignoring_hangup(c, "PUT /machine-config HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"vcpu");
    c.disconnect();  // hang up mid-body
  }
  {
    // A client that pipelines but never reads.
    ApiClient c = vmm.client();
    std::string many;
    for (int i = 0; i < 2000; ++i) many += "GET /vm/config HTTP/1.1\r\n\r\n";
    send_ignoring_hangup(c, many);
    c.disconnect();
  }

  // 3. Still alive and correct, and every hung-up connection released.
  ApiClient good = vmm.client();
  HttpReply r = get_once_connections_drain(good);
  EXPECT_EQ(r.status, 200) << r.raw;
  // Hung-up connections are released as their hang-ups are processed.
  size_t fds = 0;
  for (int attempt = 0; attempt < 100 && (fds = open_fds(vmm.pid())) > baseline_fds; ++attempt)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_LE(fds, baseline_fds) << "connections or files leaked";
  EXPECT_EQ(nlohmann::json::parse(r.body)["state"], "Not started");
  EXPECT_EQ(good.put("/machine-config", R"({"vcpu_count": 1, "mem_size_mib": 128})").status, 204);
  EXPECT_TRUE(vmm.running());
  vmm.signal(SIGTERM);
  EXPECT_EQ(vmm.wait_exit(), 0) << vmm.stdout_text().substr(0, 4000);
}

}  // namespace
}  // namespace ember::testing
