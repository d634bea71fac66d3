// `ember-vmm vhost-user` as a process (the ember-vhost-user binary): serves a
// fake frontend, exits 0 on SIGTERM and removes its sockets, and refuses bad
// command lines with status 2.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/harness/command.h"
#include "tests/harness/temp_dir.h"
#include "vmm/common/child_process.h"
#include "vmm/vhost_user/testing/fake_frontend.h"

namespace ember::vmm::vhost_user {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(VhostUserCommand, ServesDevicesUntilSigterm) {
  ember::testing::TempDir dir("ember-vu-cli");
  fs::path disk = dir / "disk.img";
  std::ofstream(disk) << std::string(1 << 20, 'x');
  std::string blk = (dir / "blk.sock").string();
  std::string rng = (dir / "rng.sock").string();
  common::SpawnOptions options;
  options.argv = {EMBER_VMM_BIN,
                  "vhost-user",
                  "--socket",
                  blk,
                  "--device",
                  "blk,path=" + disk.string(),
                  "--socket=" + rng,
                  "--device=rng",
                  "--log-path",
                  (dir / "log").string(),
                  "--level",
                  "debug"};
  options.die_with_parent = true;
  common::ChildProcess child = common::ChildProcess::spawn(options);

  testing::FakeFrontend frontend = testing::FakeFrontend::connect(blk);
  frontend.handshake();
  auto config = frontend.get_config(0, 8);
  uint64_t capacity;
  std::memcpy(&capacity, config.data(), 8);
  EXPECT_EQ(capacity, (1u << 20) / 512);
  testing::FakeFrontend rng_frontend = testing::FakeFrontend::connect(rng);
  EXPECT_EQ(rng_frontend.get_queue_num(), 1u);

  child.kill(SIGTERM);
  auto status = child.wait_for(10000);
  ASSERT_TRUE(status) << "no exit after SIGTERM";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
      << common::describe_wait_status(*status);
  EXPECT_TRUE(frontend.wait_closed());
  EXPECT_FALSE(fs::exists(blk));
  EXPECT_FALSE(fs::exists(rng));
  std::string log = read_text(dir / "log");
  EXPECT_NE(log.find("vhost-user blk: listening on " + blk), std::string::npos) << log;
  EXPECT_NE(log.find("shutting down on"), std::string::npos) << log;
}

TEST(VhostUserCommand, UsageErrorsExitWithStatusTwo) {
  for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
           {},
           {"--device", "rng"},
           {"--socket", "/tmp/x.sock"},
           {"--socket", "/tmp/x.sock", "--device", "floppy"},
           {"--socket", "/tmp/x.sock", "--device", "rng", "--level", "loud"},
           {"--bogus"},
       }) {
    args.insert(args.begin(), {EMBER_VMM_BIN, "vhost-user"});
    auto result = ember::testing::run_command(args, 10s);
    EXPECT_TRUE(WIFEXITED(result.status) && WEXITSTATUS(result.status) == 2)
        << args.size() << " args: " << result.describe() << "\n"
        << result.output;
    EXPECT_NE(result.output.find("usage: ember-vmm vhost-user"), std::string::npos)
        << result.output;
  }
}

TEST(VhostUserCommand, DeviceThatCannotBeOpenedExitsWithStatusOne) {
  ember::testing::TempDir dir("ember-vu-cli");
  auto result =
      ember::testing::run_command({EMBER_VMM_BIN, "vhost-user", "--socket", (dir / "b.sock").string(),
                                   "--device", "blk,path=" + (dir / "missing.img").string()},
                                  10s);
  EXPECT_TRUE(WIFEXITED(result.status) && WEXITSTATUS(result.status) == 1) << result.describe();
  EXPECT_NE(result.output.find("missing.img"), std::string::npos) << result.output;
  EXPECT_FALSE(fs::exists(dir / "b.sock"));
}

}  // namespace
}  // namespace ember::vmm::vhost_user
