// containerd-shim-ember-v2: containerd's runtime v2 shim for ember
// (`ctr run --runtime io.containerd.ember.v2`, CRI runtime_type
// "io.containerd.ember.v2"). See shim/README.md.
#include <unistd.h>

#include <iostream>
#include <sstream>

#include "shim/bootstrap/commands.h"
#include "shim/bootstrap/flags.h"

#ifndef EMBER_VERSION
#define EMBER_VERSION "0.0.0"
#endif

int main(int argc, char** argv) {
  using namespace ember::shim;
  ShimFlags flags;
  try {
    flags = parse_flags(argc, argv);
  } catch (const FlagError& e) {
    std::cerr << e.what() << "\nusage: " << argv[0]
              << " -namespace NS -address ADDR -publish-binary BIN -id ID [-bundle DIR] [-debug] start|delete\n";
    return 2;
  }
  if (flags.version) {
    std::cout << argv[0] << ":\n  Version: " << EMBER_VERSION << "\n  Runtime: io.containerd.ember.v2\n";
    return 0;
  }
  if (flags.action == "start") {
    std::stringstream options;
    if (!::isatty(STDIN_FILENO)) options << std::cin.rdbuf();
    return run_start(flags, options.str());
  }
  if (flags.action == "delete") return run_delete(flags);
  if (flags.action.empty()) return run_daemon(flags);
  std::cerr << "containerd-shim-ember-v2: unknown action \"" << flags.action << "\" (expected start or delete)\n";
  return 2;
}
