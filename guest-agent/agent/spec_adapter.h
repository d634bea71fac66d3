// Turns the OCI spec containerd hands the shim (written for the host) into the
// spec crun runs inside the guest. What changes and why:
// * root.path -> the guest mount of the container's rootfs.
// * Namespaces with a `path`: CRI points them at the sandbox's namespaces on
//   the host (/proc/<pid>/ns/...), which mean nothing in the guest. The
//   network namespace is dropped (the VM's own network *is* the pod's), the
//   others join the sandbox container's namespace in the guest when it is
//   known, else get a fresh one.
// * Bind mounts whose source does not exist here are host paths (kubelet
//   volumes, CRI's /etc/hosts, /etc/resolv.conf, ...) and are dropped; /dev/shm
//   becomes a tmpfs of its own.
// * linux.cgroupsPath -> the guest hierarchy; hooks (host binaries) dropped;
//   AppArmor/SELinux labels dropped when the guest kernel has no such LSM.
// * process.terminal follows the stdio the host asked for.
// Everything else (args, env, cwd, user, capabilities, rlimits, seccomp,
// resources, masked paths, sysctls) is kept as it is.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace ember::agent {

struct SpecAdaptOptions {
  std::string rootfs_path;
  bool readonly_root = false;
  std::string cgroups_path;
  bool terminal = false;
  uint32_t width = 0, height = 0;  // console size when terminal; 0 = unset
  // The guest path of the sandbox's namespace of this type ("ipc", "uts",
  // "pid", ...), if the sandbox container runs in this guest.
  std::function<std::optional<std::string>(const std::string& type)> sandbox_namespace;
  std::function<bool(const std::string& path)> path_exists;
  bool has_apparmor = false;
  bool has_selinux = false;
};

struct AdaptedSpec {
  nlohmann::json spec;
  std::vector<std::string> notes;  // one line per change worth logging
};

// Throws common::Error for a spec that is not an OCI config object.
AdaptedSpec adapt_container_spec(const std::string& spec_json, const SpecAdaptOptions& options);

// For exec: an OCI Process object, adapted the same way (terminal, labels).
nlohmann::json adapt_process_spec(const std::string& process_json, const SpecAdaptOptions& options);

}  // namespace ember::agent
