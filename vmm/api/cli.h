// The `firecracker` command line as ember-vmm accepts it
// (reference/firecracker-compat.md §1.4): `--flag value` pairs, `--help`,
// `--version`, and upstream's arg-parser rules and messages ("Found argument
// 'x' which wasn't expected, or isn't valid in this context.", ...), which
// end the process with exit code 153.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "vmm/common/error.h"

namespace ember::vmm::api {

inline constexpr const char* kDefaultApiSocket = "/run/firecracker.socket";

struct CliOptions {
  std::string api_sock = kDefaultApiSocket;
  std::string id = "anonymous-instance";
  std::optional<std::string> config_file;
  std::optional<std::string> metadata;
  bool no_api = false;
  std::optional<std::string> log_path;
  std::optional<std::string> level;
  std::optional<std::string> module;
  bool show_level = false;
  bool show_log_origin = false;
  std::optional<std::string> metrics_path;
  bool boot_timer = false;
  std::optional<std::string> seccomp_filter;
  bool no_seccomp = false;
  uint64_t http_api_max_payload_size = 51200;
  std::optional<uint64_t> mmds_size_limit;
  std::optional<uint64_t> start_time_us;
  std::optional<uint64_t> start_time_cpu_us;
  std::optional<uint64_t> parent_cpu_time_us;
  bool enable_pci = false;
  bool help = false;
  bool version = false;
  bool snapshot_version = false;
  std::optional<std::string> describe_snapshot;
  std::vector<std::string> extra_args;  // after `--`
};

// An argument error; what() is upstream's UtilsArgParserError text.
class CliError : public common::Error {
 public:
  using common::Error::Error;
};

// `args` excludes argv[0].
CliOptions parse_cli(const std::vector<std::string>& args);
// The --help text after the version line (upstream's formatted_help()).
std::string cli_help();
// --id: 1 to 64 characters, alphanumeric or '-'. Returns the problem, if any
// ("Invalid char (_) at position 2").
std::optional<std::string> validate_instance_id(const std::string& id);

}  // namespace ember::vmm::api
