// ember-vmm: a drop-in for the `firecracker` binary, plus subcommands.
//
// `ember-vmm <subcommand> ...` runs a subcommand when argv[1] names one
// (the devices component adds `vhost-user` here); anything else is the
// Firecracker-compatible VMM with Firecracker's command line.
#include <cstring>

#include "vmm/api/vmm_process.h"

namespace {

struct Subcommand {
  const char* name;
  int (*run)(int argc, char** argv);  // argv[0] is the subcommand's name
};

// Add entries as { "name", &function }.
constexpr Subcommand kSubcommands[] = {
    {nullptr, nullptr},
};

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) {
    for (const auto& sub : kSubcommands) {
      if (sub.name && std::strcmp(argv[1], sub.name) == 0) return sub.run(argc - 1, argv + 1);
    }
  }
  return ember::vmm::api::run_vmm_process(argc, argv);
}
