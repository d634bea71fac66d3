#include "shim/hypervisor/kvm_check.h"

#include <unistd.h>

#include <cstdlib>
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
  try {
    CommandResult r = run_command({checker}, std::chrono::seconds(60));
    cached = r.ok();
    log.info("kvm check", {{"checker", checker}, {"kvm_runs_linux", *cached ? "true" : "false"}});
  } catch (const std::exception& e) {
    log.warn("kvm check", {{"checker", checker}, {"error", e.what()}});
    cached = false;
  }
  return *cached;
}

}  // namespace ember::shim
