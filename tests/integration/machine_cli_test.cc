// The machine through the ember-vmm binary (controlplane's CLI, Firecracker
// compatible): `ember-vmm --no-api --config-file <json>` boots a payload and
// the process exit status is the VM's.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>

#include "tests/harness/command.h"
#include "tests/harness/require.h"
#include "tests/harness/temp_dir.h"
#include "tests/integration/payload_runner.h"

namespace ember::testing {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

fs::path ember_vmm() { return fs::path(EMBER_BINARY_DIR) / "vmm/api/ember-vmm"; }

std::string config_for(const std::string& payload, unsigned vcpus = 1) {
  return R"({"boot-source": {"kernel_image_path": ")" + payload_path(payload).string() +
         R"(", "boot_args": "console=ttyS0 from=cli"}, "drives": [], "machine-config": {"vcpu_count": )" +
         std::to_string(vcpus) + R"(, "mem_size_mib": 64}})";
}

CommandResult run_vmm(const TempDir& dir, const std::string& config, std::vector<std::string> extra = {}) {
  fs::path path = dir / "vm_config.json";
  std::ofstream(path) << config;
  std::vector<std::string> argv = {ember_vmm().string(), "--no-api", "--config-file", path.string()};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return run_command(argv, std::chrono::seconds(30));
}

#define REQUIRE_VMM_AND_KVM()                                                               \
  do {                                                                                      \
    EMBER_REQUIRE_KVM();                                                                    \
    EMBER_REQUIRE(fs::exists(ember_vmm()), "the ember-vmm binary: " + ember_vmm().string()); \
  } while (0)

TEST(MachineCli, PayloadBootsFromAConfigFileAndTheProcessExitsZero) {
  REQUIRE_VMM_AND_KVM();
  TempDir dir("ember-cli");
  CommandResult r = run_vmm(dir, config_for("boot_info", 2));
  EXPECT_TRUE(r.ok()) << r.describe() << "\n" << r.output;
  EXPECT_THAT(r.output, HasSubstr("cmdline=[console=ttyS0 from=cli]"));
  EXPECT_THAT(r.output, HasSubstr("mptable signature=PCMP checksum=ok cpus=2"));
  EXPECT_THAT(r.output, HasSubstr("EMBER-PAYLOAD: PASS"));
}

TEST(MachineCli, BootTimerFlagLogsGuestBootTime) {
  REQUIRE_VMM_AND_KVM();
  TempDir dir("ember-cli");
  CommandResult r = run_vmm(dir, config_for("boot_timer"), {"--boot-timer"});
  EXPECT_TRUE(r.ok()) << r.describe() << "\n" << r.output;
  EXPECT_THAT(r.output, ::testing::ContainsRegex("Guest-boot-time = +[0-9]+ us [0-9]+ ms, +[0-9]+ CPU us"));
}

TEST(MachineCli, TripleFaultExitsOne) {
  REQUIRE_VMM_AND_KVM();
  TempDir dir("ember-cli");
  CommandResult r = run_vmm(dir, config_for("triple_fault"));
  ASSERT_TRUE(WIFEXITED(r.status)) << r.describe();
  EXPECT_EQ(WEXITSTATUS(r.status), 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("KVM_EXIT_SHUTDOWN (triple fault)"));
}

}  // namespace
}  // namespace ember::testing
