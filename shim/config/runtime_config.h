// ember's runtime configuration: a TOML file whose path containerd passes as
// runtime options (`runtimeoptions.v1.Options.config_path`, CRI
// `[...runtimes.ember.options] ConfigPath`, `ctr run --runtime-config-path`).
// Every key has a default that works on an installed host
// (deploy/install.sh), so the file only lists what differs.
//
//   [vm]
//   backend = "auto"               # auto | qemu | ember ("auto": ember if KVM runs Linux guests, else qemu)
//   kernel = "/usr/local/share/ember/vmlinux"
//   initrd = "/usr/local/share/ember/initramfs-agent.cpio"
//   kernel_args = ""               # appended to the guest command line
//   vcpus = 1
//   memory_mib = 256
//   spare_drive_slots = 3          # drives for further containers of a pod (no hot-plug on virtio-mmio)
//   boot_timeout_ms = 60000        # VM start to agent answering
//   console_log = ""               # guest serial console to this file (default: the VM's state dir)
//
//   [qemu]
//   binary = "qemu-system-x86_64"
//   accel = "auto"                 # auto | kvm | tcg
//
//   [rootfs]
//   slack_mib = 256                # free space in a container's root image (sparse)
//
//   [shim]
//   log_level = "info"             # debug | info | warn | error
//   debug_log = ""                 # also log to this file
//   state_dir = "/run/ember"       # per-VM sockets, console logs, spare drives
//   kvm_check = ""                 # ember-kvm-check (default: beside the shim binary, then PATH)
//
// Errors name the file, the key and the problem:
//   config /etc/ember/config.toml: vm.vcpus: expected an integer from 1 to 32, got "two"
#pragma once

#include <cstdint>
#include <string>

#include "shim/log/shim_log.h"
#include "vmm/common/error.h"

namespace ember::shim {

class ConfigError : public common::Error {
 public:
  using common::Error::Error;
};

enum class BackendKind { kAuto, kQemu, kEmber };
enum class AccelKind { kAuto, kKvm, kTcg };

std::string_view backend_name(BackendKind kind);
std::string_view accel_name(AccelKind kind);

struct RuntimeConfig {
  // The file this came from, or "" for the built-in defaults.
  std::string path;

  BackendKind backend = BackendKind::kAuto;
  std::string kernel;
  std::string initrd;
  std::string kernel_args;
  uint32_t vcpus = 1;
  uint32_t memory_mib = 256;
  uint32_t spare_drive_slots = 3;
  uint32_t boot_timeout_ms = 60000;
  std::string console_log;

  std::string qemu_binary = "qemu-system-x86_64";
  AccelKind accel = AccelKind::kAuto;

  uint64_t rootfs_slack_mib = 256;

  LogLevel log_level = LogLevel::kInfo;
  std::string debug_log;
  std::string state_dir = "/run/ember";
  std::string kvm_check;

  // "config /etc/ember/config.toml" or "config (built-in defaults)": the
  // prefix of every message about this configuration.
  std::string describe() const;
  // "config <file>: <key>: <problem>".
  ConfigError error(const std::string& key, const std::string& problem) const;
};

// The defaults, with the install-time guest paths (EMBER_INSTALL_DATADIR).
RuntimeConfig default_runtime_config();

// Parses TOML text; `path` names the file in error messages. Unknown keys,
// wrong types and out-of-range values are errors.
RuntimeConfig parse_runtime_config(std::string_view text, const std::string& path);

// Reads and parses `path`; throws ConfigError naming the file when it cannot
// be read.
RuntimeConfig load_runtime_config(const std::string& path);

// The file to use: `config_path` from the runtime options when set, else
// /etc/ember/config.toml when it exists, else "" (built-in defaults).
std::string resolve_config_path(const std::string& config_path, const std::string& system_default = "/etc/ember/config.toml");

// Checks what a VM needs before one is started: kernel and initrd readable.
// Throws ConfigError: `config /x.toml: vm.kernel: /no/vmlinux: No such file or directory`.
void check_vm_files(const RuntimeConfig& config);

}  // namespace ember::shim
