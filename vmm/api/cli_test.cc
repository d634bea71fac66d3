#include "vmm/api/cli.h"

#include <gtest/gtest.h>

namespace ember::vmm::api {
namespace {

std::string error_of(std::vector<std::string> args) {
  try {
    parse_cli(args);
  } catch (const CliError& e) {
    return e.what();
  }
  return "<ok>";
}

TEST(Cli, DefaultsAreFirecrackers) {
  CliOptions o = parse_cli({});
  EXPECT_EQ(o.api_sock, "/run/firecracker.socket");
  EXPECT_EQ(o.id, "anonymous-instance");
  EXPECT_EQ(o.http_api_max_payload_size, 51200u);
  EXPECT_FALSE(o.no_api);
}

TEST(Cli, ParsesValuesAndFlags) {
  CliOptions o =
      parse_cli({"--api-sock", "/tmp/a.sock", "--id", "vm-1", "--level", "Debug", "--show-level",
                 "--boot-timer", "--start-time-us", "12", "--", "ignored"});
  EXPECT_EQ(o.api_sock, "/tmp/a.sock");
  EXPECT_EQ(o.id, "vm-1");
  EXPECT_EQ(o.level, "Debug");
  EXPECT_TRUE(o.show_level);
  EXPECT_TRUE(o.boot_timer);
  EXPECT_EQ(o.start_time_us, 12u);
  EXPECT_EQ(o.extra_args, std::vector<std::string>{"ignored"});
}

TEST(Cli, ErrorsUseUpstreamTexts) {
  EXPECT_EQ(error_of({"--foo"}),
            "Found argument 'foo' which wasn't expected, or isn't valid in this context.");
  EXPECT_EQ(error_of({"bar"}),
            "Found argument 'bar' which wasn't expected, or isn't valid in this context.");
  EXPECT_EQ(error_of({"--id", "a", "--id", "b"}), "The argument 'id' was provided more than once.");
  EXPECT_EQ(error_of({"--api-sock"}),
            "The argument 'api-sock' requires a value, but none was supplied.");
  EXPECT_EQ(error_of({"--api-sock", "--no-api"}),
            "The argument 'api-sock' requires a value, but none was supplied.");
  EXPECT_EQ(error_of({"--no-api"}), "Argument 'config-file' required, but not found.");
  EXPECT_EQ(error_of({"--no-seccomp", "--seccomp-filter", "f"}),
            "Argument 'seccomp-filter' cannot be used together with argument 'no-seccomp'.");
  EXPECT_EQ(error_of({"--http-api-max-payload-size", "x"}),
            "'http-api-max-payload-size' parameter expected to be of 'usize' type.");
}

TEST(Cli, HelpAndVersionWinOverEverythingElse) {
  EXPECT_TRUE(parse_cli({"--bogus", "--help"}).help);
  EXPECT_TRUE(parse_cli({"-h"}).help);
  EXPECT_TRUE(parse_cli({"--bogus", "--version"}).version);
  std::string help = cli_help();
  EXPECT_EQ(help.rfind("optional arguments:\n", 0), 0u);
  EXPECT_NE(help.find("  --api-sock <api-sock>"), std::string::npos);
  EXPECT_NE(help.find("[default: \"/run/firecracker.socket\"]"), std::string::npos);
}

TEST(Cli, InstanceIdRules) {
  EXPECT_FALSE(validate_instance_id("12-3aa"));
  EXPECT_EQ(validate_instance_id("12_3aa"), "Invalid char (_) at position 2");
  EXPECT_EQ(validate_instance_id(""), "Invalid len (0);  the length must be between 1 and 64");
  EXPECT_TRUE(validate_instance_id(std::string(65, 'a')));
}

}  // namespace
}  // namespace ember::vmm::api
