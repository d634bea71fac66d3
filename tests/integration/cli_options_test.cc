// ember-vmm's command line as Firecracker's: --version/--help output, exit
// codes (153 argument errors, 152 bad --level, 1 the rest) and the
// --config-file error lines. None of these boots a guest.
#include <gtest/gtest.h>
#include <signal.h>

#include "tests/integration/api_harness.h"

namespace ember::testing {
namespace {

TEST(CliOptions, VersionPrintsAFirecrackerLineFirstThenEmbersOwn) {
  EmberVmm vmm({"--version"});
  ASSERT_EQ(vmm.wait_exit(), 0);
  std::string out = vmm.stdout_text();
  std::string first = out.substr(0, out.find('\n'));
  EXPECT_EQ(first.rfind("Firecracker v", 0), 0u) << out;
  EXPECT_GT(first.size(), std::string("Firecracker v").size());
  EXPECT_NE(out.find("\nember-vmm "), std::string::npos) << out;
}

TEST(CliOptions, HelpListsTheArguments) {
  EmberVmm vmm({"--help"});
  ASSERT_EQ(vmm.wait_exit(), 0);
  std::string out = vmm.stdout_text();
  EXPECT_EQ(out.rfind("Firecracker v", 0), 0u);
  for (const char* arg :
       {"--api-sock <api-sock>", "--config-file <config-file>", "--no-api", "--boot-timer",
        "--http-api-max-payload-size", "--seccomp-filter", "--start-time-us"})
    EXPECT_NE(out.find(arg), std::string::npos) << arg;
}

struct ExitCase {
  std::vector<std::string> args;
  int code;
  const char* message;
};

TEST(CliOptions, BadArgumentsExitWithUpstreamCodesAndMessages) {
  const ExitCase cases[] = {
      {{"--foo"},
       153,
       "Found argument 'foo' which wasn't expected, or isn't valid in this context."},
      {{"--no-api"}, 153, "Argument 'config-file' required, but not found."},
      {{"--id"}, 153, "The argument 'id' requires a value, but none was supplied."},
      {{"--id", "bad_id"}, 153, "Invalid instance ID: Invalid char (_) at position 3"},
      {{"--no-seccomp", "--seccomp-filter", "x"},
       153,
       "Argument 'seccomp-filter' cannot be used together with argument 'no-seccomp'."},
      {{"--level", "chatty"},
       152,
       "Invalid value for logger level: Failed to parse string to level filter: chatty.Possible "
       "values: [Error, "
       "Warning, Info, Debug]"},
      {{"--log-path", "/nonexistent-dir/fc.log"},
       1,
       "Could not initialize logger: Failed to open target file: No such file or directory (os "
       "error 2)"},
      {{"--metrics-path", "/nonexistent-dir/m.json"},
       1,
       "Could not initialize metrics: Cannot initialize the metrics system due to bad user input: "
       "No such file or "
       "directory (os error 2)"},
      {{"--config-file", "/nonexistent-dir/vm.json", "--no-api"},
       1,
       "Unable to open or read from the configuration file"},
  };
  for (const auto& c : cases) {
    EmberVmm vmm(c.args);
    EXPECT_EQ(vmm.wait_exit(), c.code) << c.message;
    std::string out = vmm.stdout_text();
    EXPECT_NE(out.find(c.message), std::string::npos) << out;
    EXPECT_NE(out.find("Firecracker exiting with error. exit_code=" + std::to_string(c.code)),
              std::string::npos)
        << out;
    EXPECT_NE(vmm.stderr_text().find("Error: "), std::string::npos);
  }
}

TEST(CliOptions, AcceptedFlagsThatEmberDoesNotActOnAreSaidSo) {
  EmberVmm vmm({"--seccomp-filter", "/nonexistent.bpf", "--mmds-size-limit", "1024",
                "--start-time-us", "1", "--start-time-cpu-us", "1", "--parent-cpu-time-us", "5"});
  ASSERT_TRUE(vmm.wait_ready());
  vmm.signal(SIGTERM);
  EXPECT_EQ(vmm.wait_exit(), 0);
  EXPECT_NE(vmm.stdout_text().find("seccomp filtering is not implemented in ember yet"),
            std::string::npos)
      << vmm.stdout_text();
}

// A config file that parses and validates but names a kernel that is no
// kernel: the point here is the error lines, not the boot.
void expect_config_failure(const std::string& config, const std::string& message, bool no_api) {
  TempDir dir("ember-cli-config");
  write_file(dir / "vm.json", config);
  std::vector<std::string> args{"--config-file", (dir / "vm.json").string()};
  if (no_api) args.push_back("--no-api");
  EmberVmm vmm(args);
  EXPECT_EQ(vmm.wait_exit(), 1);
  std::string out = vmm.stdout_text();
  std::string context = no_api ? "RunWithoutApiError error: " : "RunWithApi error: ";
  EXPECT_NE(out.find(context + "Failed to build MicroVM from Json: " + message), std::string::npos)
      << out;
  EXPECT_NE(out.find("Firecracker exiting with error. exit_code=1"), std::string::npos) << out;
}

TEST(CliOptions, ConfigFileErrorsAreUpstreamsLines) {
  expect_config_failure(
      "{",
      "Configuration for VMM from one single json failed: Invalid JSON: EOF while parsing an "
      "object at line 1 column 1",
      true);
  expect_config_failure(
      R"({"boot-source": {"kernel_image_path": "/nonexistent/vmlinux"}})",
      "Configuration for VMM from one single json failed: Invalid JSON: missing field `drives` at "
      "line 1 column 62",
      false);
  // upstream's tests/framework/vm_config_missing_vcpu_count.json, in spirit
  expect_config_failure(
      R"({"boot-source": {"kernel_image_path": "/nonexistent/vmlinux"}, "drives": [],
                            "machine-config": {"mem_size_mib": 1024}})",
      "Configuration for VMM from one single json failed: Invalid JSON: missing field `vcpu_count`",
      true);
  expect_config_failure(
      R"({"boot-source": {"kernel_image_path": "/nonexistent/vmlinux"}, "drives": []})",
      "Configuration for VMM from one single json failed: Boot source error: The kernel file "
      "cannot "
      "be opened: No such file or directory (os error 2)",
      true);
  expect_config_failure(R"({"boot-source": {"kernel_image_path": "/proc/self/exe"}, "drives": [],
                            "machine-config": {"vcpu_count": 0, "mem_size_mib": 128}})",
                        "Configuration for VMM from one single json failed: VM config error: The "
                        "number of vCPUs must "
                        "be greater than 0",
                        true);
  expect_config_failure(
      R"({"boot-source": {"kernel_image_path": "/proc/self/exe"}, "drives": [],
                            "balloon": {"amount_mib": 1, "deflate_on_oom": false}})",
      "Configuration for VMM from one single json failed: The balloon device is not supported by "
      "ember.",
      true);
}

}  // namespace
}  // namespace ember::testing
