#include "shim/config/runtime_config.h"

#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <sys/stat.h>

#include "shim/config/toml.h"

#ifndef EMBER_INSTALL_DATADIR
#define EMBER_INSTALL_DATADIR "/usr/local/share/ember"
#endif

namespace ember::shim {

std::string_view backend_name(BackendKind kind) {
  switch (kind) {
    case BackendKind::kAuto: return "auto";
    case BackendKind::kQemu: return "qemu";
    case BackendKind::kEmber: return "ember";
  }
  return "auto";
}

std::string_view accel_name(AccelKind kind) {
  switch (kind) {
    case AccelKind::kAuto: return "auto";
    case AccelKind::kKvm: return "kvm";
    case AccelKind::kTcg: return "tcg";
  }
  return "auto";
}

std::string RuntimeConfig::describe() const {
  return path.empty() ? "config (built-in defaults)" : "config " + path;
}

ConfigError RuntimeConfig::error(const std::string& key, const std::string& problem) const {
  return ConfigError(describe() + ": " + key + ": " + problem);
}

RuntimeConfig default_runtime_config() {
  RuntimeConfig config;
  config.kernel = std::string(EMBER_INSTALL_DATADIR) + "/vmlinux";
  config.initrd = std::string(EMBER_INSTALL_DATADIR) + "/initramfs-agent.cpio";
  return config;
}

namespace {

std::string quoted(const TomlValue& v) {
  if (v.is_string()) return "\"" + std::get<std::string>(v.value) + "\"";
  if (v.is_integer()) return std::to_string(std::get<int64_t>(v.value));
  if (v.is_bool()) return std::get<bool>(v.value) ? "true" : "false";
  return "an array";
}

}  // namespace

RuntimeConfig parse_runtime_config(std::string_view text, const std::string& path) {
  RuntimeConfig config = default_runtime_config();
  config.path = path;
  TomlDocument doc;
  try {
    doc = parse_toml(text);
  } catch (const TomlError& e) {
    throw ConfigError(config.describe() + ": " + e.what());
  }

  auto string_key = [&](std::string& out) {
    return [&out, &config](const std::string& key, const TomlValue& v) {
      if (!v.is_string()) throw config.error(key, "expected a string, got " + quoted(v));
      out = std::get<std::string>(v.value);
    };
  };
  auto path_key = [&](std::string& out) {
    return [&out, &config](const std::string& key, const TomlValue& v) {
      if (!v.is_string()) throw config.error(key, "expected a path string, got " + quoted(v));
      std::string p = std::get<std::string>(v.value);
      if (!p.empty() && p[0] != '/') throw config.error(key, "expected an absolute path, got \"" + p + "\"");
      out = p;
    };
  };
  auto uint_key = [&](auto& out, int64_t min, int64_t max) {
    return [&out, min, max, &config](const std::string& key, const TomlValue& v) {
      std::string range = "expected an integer from " + std::to_string(min) + " to " + std::to_string(max);
      if (!v.is_integer()) throw config.error(key, range + ", got " + quoted(v));
      int64_t n = std::get<int64_t>(v.value);
      if (n < min || n > max) throw config.error(key, range + ", got " + std::to_string(n));
      out = static_cast<std::remove_reference_t<decltype(out)>>(n);
    };
  };

  using Setter = std::function<void(const std::string&, const TomlValue&)>;
  std::map<std::string, Setter> keys = {
      {"vm.backend",
       [&](const std::string& key, const TomlValue& v) {
         std::string s = v.is_string() ? std::get<std::string>(v.value) : "";
         if (s == "auto") config.backend = BackendKind::kAuto;
         else if (s == "qemu") config.backend = BackendKind::kQemu;
         else if (s == "ember") config.backend = BackendKind::kEmber;
         else throw config.error(key, "expected \"auto\", \"qemu\" or \"ember\", got " + quoted(v));
       }},
      {"vm.kernel", path_key(config.kernel)},
      {"vm.initrd", path_key(config.initrd)},
      {"vm.kernel_args", string_key(config.kernel_args)},
      {"vm.vcpus", uint_key(config.vcpus, 1, 32)},
      {"vm.memory_mib", uint_key(config.memory_mib, 64, 1 << 20)},
      {"vm.spare_drive_slots", uint_key(config.spare_drive_slots, 0, 16)},
      {"vm.boot_timeout_ms", uint_key(config.boot_timeout_ms, 100, 3600000)},
      {"vm.console_log", path_key(config.console_log)},
      {"qemu.binary", string_key(config.qemu_binary)},
      {"qemu.accel",
       [&](const std::string& key, const TomlValue& v) {
         std::string s = v.is_string() ? std::get<std::string>(v.value) : "";
         if (s == "auto") config.accel = AccelKind::kAuto;
         else if (s == "kvm") config.accel = AccelKind::kKvm;
         else if (s == "tcg") config.accel = AccelKind::kTcg;
         else throw config.error(key, "expected \"auto\", \"kvm\" or \"tcg\", got " + quoted(v));
       }},
      {"rootfs.slack_mib", uint_key(config.rootfs_slack_mib, 0, 1 << 20)},
      {"shim.log_level",
       [&](const std::string& key, const TomlValue& v) {
         if (!v.is_string()) throw config.error(key, "expected a string, got " + quoted(v));
         try {
           config.log_level = parse_log_level(std::get<std::string>(v.value));
         } catch (const common::Error& e) {
           throw config.error(key, e.what());
         }
       }},
      {"shim.debug_log", path_key(config.debug_log)},
      {"shim.state_dir", path_key(config.state_dir)},
      {"shim.kvm_check", path_key(config.kvm_check)},
  };

  for (const auto& [key, value] : doc) {
    auto it = keys.find(key);
    if (it == keys.end()) {
      throw ConfigError(config.describe() + ": line " + std::to_string(value.line) + ": unknown key \"" + key + "\"");
    }
    it->second(key, value);
  }
  if (config.qemu_binary.empty()) throw config.error("qemu.binary", "must not be empty");
  if (config.state_dir.empty()) throw config.error("shim.state_dir", "must not be empty");
  return config;
}

RuntimeConfig load_runtime_config(const std::string& path) {
  if (path.empty()) return default_runtime_config();
  std::ifstream in(path);
  if (!in) {
    int err = errno;
    throw ConfigError("config " + path + ": cannot read: " + common::errno_text(err ? err : ENOENT));
  }
  std::stringstream buf;
  buf << in.rdbuf();
  return parse_runtime_config(buf.str(), path);
}

std::string resolve_config_path(const std::string& config_path, const std::string& system_default) {
  if (!config_path.empty()) return config_path;
  struct stat st {};
  if (!system_default.empty() && ::stat(system_default.c_str(), &st) == 0) return system_default;
  return "";
}

void check_vm_files(const RuntimeConfig& config) {
  auto check = [&](const std::string& key, const std::string& path) {
    if (path.empty()) throw config.error(key, "not set");
    if (::access(path.c_str(), R_OK) != 0) {
      throw config.error(key, path + ": " + common::errno_text(errno));
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
      throw config.error(key, path + ": not a regular file");
    }
  };
  check("vm.kernel", config.kernel);
  if (!config.initrd.empty()) check("vm.initrd", config.initrd);
}

}  // namespace ember::shim
