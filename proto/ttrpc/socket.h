// Unix-socket helpers for ttrpc endpoints.
#pragma once

#include <sys/socket.h>

#include <optional>
#include <string>

#include "vmm/common/unique_fd.h"

namespace ember::ttrpc {

// Connected AF_UNIX stream socket to `path` (an optional "unix://" prefix is
// stripped, so a shim address works as is). Throws common::SystemError naming
// the path.
common::UniqueFd dial_unix(const std::string& path);

// Bound and listening AF_UNIX stream socket at `path`, mode 0600. The path
// must not exist. Throws common::SystemError naming the path.
common::UniqueFd listen_unix(const std::string& path);

// True if `fd` is an AF_UNIX socket (the only family with SO_PEERCRED;
// AF_VSOCK carries no credentials).
bool is_unix_socket(int fd);

// SO_PEERCRED of a connected AF_UNIX socket; nullopt if unavailable.
std::optional<ucred> peer_credentials(int fd);

}  // namespace ember::ttrpc
