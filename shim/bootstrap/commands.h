// The shim's three modes (reference §1.2-§1.4):
//
// * `start`: find or create the pod's socket, fork the daemon detached from
//   containerd's pipes, write `address`, print `unix:///...`, exit 0.
// * `delete`: clean up one container after its task is gone or its shim
//   died; print a DeleteResponse protobuf.
// * no action: the daemon (started by `start` with the listening socket as
//   fd 3) serves the Task API until Shutdown finds no container left.
#pragma once

#include <string>

#include "shim/bootstrap/flags.h"

namespace ember::shim {

// Exit statuses; messages go to stderr (containerd shows them).
int run_start(const ShimFlags& flags, const std::string& options_any);
int run_delete(const ShimFlags& flags);
int run_daemon(const ShimFlags& flags);

// The config file named by runtime options (a serialized Any of
// runtimeoptions.v1.Options), "" when none.
std::string config_path_from_options(const std::string& options_any);

// The environment variable through which `start` hands the config path to the daemon.
inline constexpr const char* kConfigPathEnv = "EMBER_SHIM_CONFIG";

}  // namespace ember::shim
