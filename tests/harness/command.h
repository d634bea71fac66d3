// Runs a helper program (mkfs.ext4, debugfs, ...) to completion and captures
// what it prints.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace ember::testing {

struct CommandResult {
  int status = 0;        // raw wait status
  std::string output;    // stdout and stderr, interleaved as written
  bool ok() const;       // exited 0
  std::string describe() const;  // "exited 1" / "killed by signal 9 (...)"
};

// Throws common::Error when the program cannot be started. A program still
// running after `timeout` is killed (the result then says so).
CommandResult run_command(const std::vector<std::string>& argv,
                          std::chrono::milliseconds timeout = std::chrono::seconds(60));

// Like run_command, but throws common::Error naming the command, its status
// and its output unless it exited 0. Returns the output.
std::string run_checked(const std::vector<std::string>& argv,
                        std::chrono::milliseconds timeout = std::chrono::seconds(60));

// Full path of `program` found in $PATH (or the path itself when it contains a
// '/' and is executable); empty when there is none.
std::string find_program(const std::string& program);

}  // namespace ember::testing
