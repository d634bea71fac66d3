// containerd's shim command line (reference §1.2, §1.4), parsed the way Go's
// `flag` package does it, because that is what containerd's own shims use and
// what containerd expects to work:
//
//   containerd-shim-ember-v2 -namespace k8s.io -address /run/containerd/containerd.sock
//       -publish-binary /usr/bin/containerd -id <id> [-bundle <dir>] [-debug] start
//
// * one or two dashes; `-name value` or `-name=value`; booleans as `-debug`
//   or `-debug=true|false` (never `-debug true`);
// * parsing stops at the first non-flag argument (the action) or at `--`;
//   everything after it is positional;
// * an unknown flag is an error ("flag provided but not defined: -x").
#pragma once

#include <string>
#include <vector>

#include "vmm/common/error.h"

namespace ember::shim {

class FlagError : public common::Error {
 public:
  using common::Error::Error;
};

struct ShimFlags {
  std::string ns;              // -namespace
  std::string address;         // -address: containerd's gRPC socket
  std::string publish_binary;  // -publish-binary
  std::string id;              // -id
  std::string bundle;          // -bundle (delete; default: cwd)
  std::string socket;          // -socket (accepted, unused by containerd 1.6)
  bool debug = false;          // -debug
  bool version = false;        // -v
  std::string action;          // first positional: "start", "delete", or "" (the daemon)
  std::vector<std::string> args;  // positionals after the action
};

ShimFlags parse_flags(const std::vector<std::string>& argv);  // argv[0] excluded
ShimFlags parse_flags(int argc, char** argv);                 // argv[0] skipped

// The flags as containerd passes them (without the action), to re-exec the
// shim as its daemon.
std::vector<std::string> format_flags(const ShimFlags& flags);

}  // namespace ember::shim
