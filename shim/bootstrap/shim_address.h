// Where a shim listens and how containerd finds it again (reference §1.2).
//
// One shim serves one pod: containers are grouped by annotation, and every
// member of a group hashes to the same socket, so the `start` of a second
// container finds the pod's shim already listening and just answers its
// address. The address is also written to `address` in every bundle: it is
// what containerd reads to reconnect after a restart.
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

namespace ember::shim {

// Annotations that put a container into a group, in priority order: ember's
// own, then CRI's sandbox id (a sandbox's own id is its sandbox-id, so the
// pause container and the pod's app containers meet), then CRI-O's.
inline constexpr const char* kGroupAnnotation = "io.ember.group";
inline constexpr const char* kCriSandboxIdAnnotation = "io.kubernetes.cri.sandbox-id";
inline constexpr const char* kCrioSandboxIdAnnotation = "io.kubernetes.cri-o.SandboxID";
inline constexpr const char* kCriContainerTypeAnnotation = "io.kubernetes.cri.container-type";

// The group of a container from its OCI spec (config.json); `id` when no
// grouping annotation is present.
std::string group_id(const nlohmann::json& spec, const std::string& id);

// hex(sha256(<containerd address> "/" <namespace> "/" <group>)) under `dir`,
// the convention of containerd's runc shim; always short enough for sun_path.
std::string socket_path(const std::string& containerd_address, const std::string& ns, const std::string& group,
                        const std::string& dir = "/run/containerd/s");

// "unix:///abs/path": containerd 1.6 dials an abstract socket without the scheme.
std::string format_address(const std::string& socket_path);
// The socket path of "unix:///abs/path" (or a bare path); "" for anything else.
std::string parse_address(const std::string& address);

// Writes `<bundle>/address` atomically (".address" then rename). Throws
// common::SystemError naming the file.
void write_address_file(const std::string& bundle, const std::string& address);
// The address in `<bundle>/address`, or "" when there is none.
std::string read_address_file(const std::string& bundle);

// True when something accepts connections on the unix socket at `path`.
bool socket_accepts(const std::string& path);

// Lowercase hex SHA-256 of `data`.
std::string sha256_hex(const std::string& data);

}  // namespace ember::shim
