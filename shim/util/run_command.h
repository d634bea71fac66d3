// Runs a helper program (mkfs.ext4, umount, ...) to completion and captures
// what it prints. The shim's counterpart of the test harness's run_command.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace ember::shim {

struct CommandResult {
  int status = 0;      // raw wait status
  std::string output;  // stdout and stderr, interleaved
  bool ok() const;
};

// Throws common::Error when the program cannot be started. Killed after `timeout`.
CommandResult run_command(const std::vector<std::string>& argv,
                          std::chrono::milliseconds timeout = std::chrono::seconds(120));

// Throws common::Error "<what>: <argv0> exited 1: <output>" unless it exits 0.
std::string run_checked(const std::string& what, const std::vector<std::string>& argv,
                        std::chrono::milliseconds timeout = std::chrono::seconds(120));

}  // namespace ember::shim
