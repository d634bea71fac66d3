#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include <google/protobuf/any.pb.h>

#include "containerd/runtimeoptions/v1/api.pb.h"
#include "shim/bootstrap/commands.h"
#include "shim/bootstrap/shim_address.h"
#include "shim/config/runtime_config.h"
#include "shim/log/shim_log.h"
#include "vmm/common/child_process.h"
#include "vmm/common/error.h"
#include "vmm/common/unique_fd.h"

extern char** environ;

namespace ember::shim {

std::string config_path_from_options(const std::string& options_any) {
  if (options_any.empty()) return "";
  google::protobuf::Any any;
  if (!any.ParseFromString(options_any)) return "";
  if (any.type_url().find("runtimeoptions.v1.Options") == std::string::npos) return "";
  runtimeoptions::v1::Options options;
  if (!options.ParseFromString(any.value())) return "";
  return options.config_path();
}

namespace {

std::string current_dir() {
  char buf[PATH_MAX];
  if (!::getcwd(buf, sizeof buf)) common::throw_errno("getcwd");
  return buf;
}

common::UniqueFd listen_on(const std::string& path) {
  sockaddr_un addr{};
  if (path.size() >= sizeof addr.sun_path) throw common::Error("socket path too long: " + path);
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  for (int attempt = 0; attempt < 2; ++attempt) {
    common::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) common::throw_errno("socket for " + path);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      if (::chmod(path.c_str(), 0600) < 0) common::throw_errno("chmod " + path);
      if (::listen(fd.get(), SOMAXCONN) < 0) common::throw_errno("listen on " + path);
      return fd;
    }
    if (errno != EADDRINUSE || attempt > 0) common::throw_errno("bind " + path);
    // Nobody accepted on it (checked by the caller): a stale socket.
    ::unlink(path.c_str());
  }
  throw common::Error("bind " + path + ": still in use");
}

void adjust_oom_score(pid_t daemon) {
  // The daemon is one point more killable than containerd (runc's shim does this).
  std::ifstream parent("/proc/" + std::to_string(::getppid()) + "/oom_score_adj");
  int score = 0;
  if (!(parent >> score)) return;
  int adjusted = std::min(score + 1, 1000);
  std::ofstream child("/proc/" + std::to_string(daemon) + "/oom_score_adj");
  child << adjusted;
}

}  // namespace

int run_start(const ShimFlags& flags, const std::string& options_any) {
  std::string socket;
  bool created = false;
  try {
    if (flags.id.empty()) throw common::Error("start: -id is required");
    if (flags.ns.empty()) throw common::Error("start: -namespace is required");
    std::string bundle = flags.bundle.empty() ? current_dir() : flags.bundle;
    std::string config_path = config_path_from_options(options_any);

    nlohmann::json spec = nlohmann::json::object();
    {
      std::ifstream in(bundle + "/config.json");
      if (!in) throw common::Error("start: read " + bundle + "/config.json: " + common::errno_text(errno));
      spec = nlohmann::json::parse(in);
    }
    std::string group = group_id(spec, flags.id);
    socket = socket_path(flags.address, flags.ns, group);
    std::string address = format_address(socket);

    // Only the debug file: the start process must print nothing but the address.
    ShimLog log;
    try {
      RuntimeConfig config = load_runtime_config(resolve_config_path(config_path));
      if (!config.debug_log.empty()) log.add_file(config.debug_log);
      log.set_level(flags.debug ? LogLevel::kDebug : config.log_level);
    } catch (const std::exception&) {
      // A broken config is reported at Create, where containerd shows it.
    }
    log.info("start", {{"id", flags.id}, {"namespace", flags.ns}, {"group", group}});

    if (socket_accepts(socket)) {
      // The pod's shim runs already: join it.
      write_address_file(bundle, address);
      log.info("start joins running shim", {{"id", flags.id}, {"address", address}});
      std::cout << address << std::flush;
      return 0;
    }
    std::filesystem::create_directories(std::filesystem::path(socket).parent_path());
    common::UniqueFd listener = listen_on(socket);
    created = true;

    common::SpawnOptions options;
    std::error_code ec;
    auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    options.argv.push_back(ec ? "containerd-shim-ember-v2" : self.string());
    for (auto& a : format_flags(flags)) options.argv.push_back(a);
    std::vector<std::string> env;
    for (char** e = environ; e && *e; ++e) {
      if (std::strncmp(*e, kConfigPathEnv, std::strlen(kConfigPathEnv)) == 0) continue;
      env.emplace_back(*e);
    }
    env.push_back(std::string(kConfigPathEnv) + "=" + config_path);
    options.env = env;
    options.cwd = bundle;
    options.extra_fds = {{3, listener.get()}};
    options.new_session = true;  // and stdio -> /dev/null: never hold containerd's pipes
    common::ChildProcess daemon = common::ChildProcess::spawn(options);
    pid_t pid = daemon.release();
    adjust_oom_score(pid);
    write_address_file(bundle, address);
    log.info("shim daemon started", {{"id", flags.id}, {"pid", pid}, {"address", address}});
    std::cout << address << std::flush;
    return 0;
  } catch (const std::exception& e) {
    if (created) ::unlink(socket.c_str());
    std::cerr << "containerd-shim-ember-v2 start: " << e.what() << std::endl;
    return 1;
  }
}

}  // namespace ember::shim
