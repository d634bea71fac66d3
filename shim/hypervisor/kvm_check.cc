#include "shim/hypervisor/kvm_check.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <filesystem>
#include <mutex>
#include <optional>
#include <sstream>

#include "shim/util/run_command.h"

namespace ember::shim {

std::string find_kvm_check(const RuntimeConfig& config) {
  if (!config.kvm_check.empty()) return config.kvm_check;
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    auto beside = self.parent_path() / "ember-kvm-check";
    if (::access(beside.c_str(), X_OK) == 0) return beside.string();
  }
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    std::string candidate = dir + "/ember-kvm-check";
    if (!dir.empty() && ::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

namespace {

std::string boot_id() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return id;
}

// One answer per boot and checker, shared by every shim through the state
// directory (tmpfs): the check boots a payload VM, ~100 ms per pod otherwise.
std::optional<bool> read_cache(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  auto space = line.rfind(' ');
  if (space == std::string::npos || line.substr(0, space) != key) return std::nullopt;
  std::string value = line.substr(space + 1);
  if (value == "yes") return true;
  if (value == "no") return false;
  return std::nullopt;
}

void write_cache(const std::string& path, const std::string& key, bool result) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << key << " " << (result ? "yes" : "no") << "\n";
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) std::filesystem::remove(tmp, ec);
}

}  // namespace

bool kvm_runs_linux_guests(const RuntimeConfig& config, ShimLog& log) {
  static std::mutex mutex;
  static std::optional<bool> cached;
  std::lock_guard lock(mutex);
  if (cached) return *cached;
  if (::access("/dev/kvm", R_OK | W_OK) != 0) {
    log.info("kvm check", {{"result", "no usable /dev/kvm"}});
    cached = false;
    return false;
  }
  std::string checker = find_kvm_check(config);
  if (checker.empty()) {
    log.warn("kvm check", {{"result", "ember-kvm-check not found; assuming KVM cannot run Linux guests"}});
    cached = false;
    return false;
  }
  std::string cache_path = config.state_dir + "/kvm-check";
  std::string key = boot_id() + " " + checker;
  if (auto hit = read_cache(cache_path, key)) {
    cached = *hit;
    log.debug("kvm check", {{"cached", cache_path}, {"kvm_runs_linux", *cached ? "true" : "false"}});
    return *cached;
  }
  try {
    CommandResult r = run_command({checker}, std::chrono::seconds(60));
    cached = r.ok();
    log.info("kvm check", {{"checker", checker}, {"kvm_runs_linux", *cached ? "true" : "false"}});
    write_cache(cache_path, key, *cached);
  } catch (const std::exception& e) {
    log.warn("kvm check", {{"checker", checker}, {"error", e.what()}});
    cached = false;
  }
  return *cached;
}

}  // namespace ember::shim
