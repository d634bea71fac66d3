#include "vmm/api/cli.h"

#include <algorithm>
#include <map>

namespace ember::vmm::api {
namespace {

struct ArgSpec {
  const char* name;
  bool takes_value;
  const char* help;
  const char* default_value = nullptr;
  const char* requires_arg = nullptr;
  const char* forbids = nullptr;
};

// Kept in name order: upstream stores arguments in a BTreeMap, which decides
// the order of --help and of requirement checks.
const ArgSpec kArgs[] = {
    {"api-sock", true, "Path to unix domain socket used by the API.", kDefaultApiSocket},
    {"boot-timer", false,
     "Whether or not to load boot timer device for logging elapsed time since InstanceStart "
     "command."},
    {"config-file", true, "Path to a file that contains the microVM configuration in JSON format."},
    {"describe-snapshot", true,
     "Print the data format version of the provided snapshot state file. (Snapshots are not "
     "supported by ember.)"},
    {"enable-pci", false,
     "Enables PCIe support. (Not supported by ember: devices use virtio-mmio.)"},
    {"http-api-max-payload-size", true, "Http API request payload max size, in bytes.", "51200"},
    {"id", true, "MicroVM unique identifier.", "anonymous-instance"},
    {"level", true, "Set the logger level."},
    {"log-path", true, "Path to a fifo or a file used for configuring the logger on startup."},
    {"metadata", true,
     "Path to a file that contains metadata in JSON format to add to the mmds. (MMDS is not "
     "supported by ember.)"},
    {"metrics-path", true, "Path to a fifo or a file used for configuring the metrics on startup."},
    {"mmds-size-limit", true,
     "Mmds data store limit, in bytes. (Accepted; MMDS is not supported by ember.)"},
    {"module", true, "Set the logger module filter."},
    {"no-api", false,
     "Optional parameter which allows starting and using a microVM without an active API socket.",
     nullptr, "config-file"},
    {"no-seccomp", false,
     "Optional parameter which allows starting and using a microVM without seccomp filtering. Not "
     "recommended.",
     nullptr, nullptr, "seccomp-filter"},
    {"parent-cpu-time-us", true,
     "Parent process CPU time (wall clock, microseconds). This parameter is optional."},
    {"seccomp-filter", true,
     "Optional parameter which allows specifying the path to a custom seccomp filter. For advanced "
     "users.",
     nullptr, nullptr, "no-seccomp"},
    {"show-level", false, "Whether or not to output the level in the logs."},
    {"show-log-origin", false,
     "Whether or not to include the file path and line number of the log's origin."},
    {"snapshot-version", false,
     "Print the supported data format version. (Snapshots are not supported by ember.)"},
    {"start-time-cpu-us", true,
     "Process start CPU time (wall clock, microseconds). This parameter is optional."},
    {"start-time-us", true,
     "Process start time (wall clock, microseconds). This parameter is optional."},
    {"version", false, "Print the binary version number."},
};

const ArgSpec* find_arg(std::string_view name) {
  for (const auto& a : kArgs)
    if (name == a.name) return &a;
  return nullptr;
}

uint64_t parse_number(const std::string& name, const std::string& value, const char* rust_type) {
  bool ok = !value.empty() && value.size() <= 20 &&
            std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; });
  uint64_t v = 0;
  if (ok) {
    try {
      v = std::stoull(value);
    } catch (...) {
      ok = false;
    }
  }
  if (!ok) throw CliError("'" + name + "' parameter expected to be of '" + rust_type + "' type.");
  return v;
}

}  // namespace

std::optional<std::string> validate_instance_id(const std::string& id) {
  if (id.empty() || id.size() > 64)
    return "Invalid len (" + std::to_string(id.size()) + ");  the length must be between 1 and 64";
  for (size_t i = 0; i < id.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(id[i]);
    if (!(c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
      return "Invalid char (" + std::string(1, static_cast<char>(c)) + ") at position " +
             std::to_string(i);
  }
  return std::nullopt;
}

CliOptions parse_cli(const std::vector<std::string>& all_args) {
  CliOptions options;
  auto separator = std::find(all_args.begin(), all_args.end(), "--");
  std::vector<std::string> args(all_args.begin(), separator);
  if (separator != all_args.end()) options.extra_args.assign(separator + 1, all_args.end());

  // Upstream looks for --help/-h and --version before anything else.
  if (std::find(args.begin(), args.end(), "--help") != args.end() ||
      std::find(args.begin(), args.end(), "-h") != args.end()) {
    options.help = true;
    return options;
  }
  if (std::find(args.begin(), args.end(), "--version") != args.end()) {
    options.version = true;
    return options;
  }

  std::map<std::string, std::optional<std::string>> given;  // name -> value (nullopt for flags)
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.rfind("--", 0) != 0)
      throw CliError("Found argument '" + arg +
                     "' which wasn't expected, or isn't valid in this context.");
    std::string name = arg.substr(2);
    const ArgSpec* spec = find_arg(name);
    if (!spec)
      throw CliError("Found argument '" + name +
                     "' which wasn't expected, or isn't valid in this context.");
    if (given.count(name))
      throw CliError("The argument '" + name + "' was provided more than once.");
    if (spec->takes_value) {
      if (i + 1 >= args.size() || args[i + 1].rfind("--", 0) == 0)
        throw CliError("The argument '" + name + "' requires a value, but none was supplied.");
      given[name] = args[++i];
    } else {
      given[name] = std::nullopt;
    }
  }
  for (const auto& spec : kArgs) {
    if (!given.count(spec.name)) continue;
    if (spec.requires_arg && !given.count(spec.requires_arg))
      throw CliError(std::string("Argument '") + spec.requires_arg + "' required, but not found.");
    if (spec.forbids && given.count(spec.forbids))
      throw CliError(std::string("Argument '") + spec.forbids +
                     "' cannot be used together with argument '" + spec.name + "'.");
  }

  auto value = [&](const char* name) -> std::optional<std::string> {
    auto it = given.find(name);
    return it == given.end() ? std::nullopt : it->second;
  };
  auto flag = [&](const char* name) { return given.count(name) != 0; };

  if (auto v = value("api-sock")) options.api_sock = *v;
  if (auto v = value("id")) options.id = *v;
  options.config_file = value("config-file");
  options.metadata = value("metadata");
  options.no_api = flag("no-api");
  options.log_path = value("log-path");
  options.level = value("level");
  options.module = value("module");
  options.show_level = flag("show-level");
  options.show_log_origin = flag("show-log-origin");
  options.metrics_path = value("metrics-path");
  options.boot_timer = flag("boot-timer");
  options.seccomp_filter = value("seccomp-filter");
  options.no_seccomp = flag("no-seccomp");
  options.enable_pci = flag("enable-pci");
  options.snapshot_version = flag("snapshot-version");
  options.describe_snapshot = value("describe-snapshot");
  if (auto v = value("http-api-max-payload-size"))
    options.http_api_max_payload_size = parse_number("http-api-max-payload-size", *v, "usize");
  if (auto v = value("mmds-size-limit"))
    options.mmds_size_limit = parse_number("mmds-size-limit", *v, "usize");
  if (auto v = value("start-time-us"))
    options.start_time_us = parse_number("start-time-us", *v, "u64");
  if (auto v = value("start-time-cpu-us"))
    options.start_time_cpu_us = parse_number("start-time-cpu-us", *v, "u64");
  if (auto v = value("parent-cpu-time-us"))
    options.parent_cpu_time_us = parse_number("parent-cpu-time-us", *v, "u64");
  return options;
}

std::string cli_help() {
  std::vector<std::pair<std::string, std::string>> rows;
  size_t width = 0;
  for (const auto& a : kArgs) {
    std::string name = a.takes_value ? std::string("  --") + a.name + " <" + a.name + ">"
                                     : std::string("  --") + a.name;
    std::string help = a.help;
    if (a.default_value) help += std::string(" [default: \"") + a.default_value + "\"]";
    width = std::max(width, name.size());
    rows.emplace_back(std::move(name), std::move(help));
  }
  std::string out = "optional arguments:\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    out += rows[i].first;
    out.append(width - rows[i].first.size(), ' ');
    out += "   ";
    out += rows[i].second;
    if (i + 1 < rows.size()) out += '\n';
  }
  return out;
}

}  // namespace ember::vmm::api
