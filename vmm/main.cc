// ember-vmm: a drop-in for the `firecracker` binary, plus subcommands.
//
// `ember-vmm <subcommand> ...` runs a subcommand when argv[1] names one
// (`ember-vmm vhost-user --socket P --device blk,path=F ...`); anything else is the
// Firecracker-compatible VMM with Firecracker's command line.
#include <cstring>

#include "vmm/api/vmm_process.h"
#include "vmm/vhost_user/cli.h"

namespace {

struct Subcommand {
  const char* name;
  int (*run)(int argc, char** argv);  // argv[0] is the subcommand's name
};

constexpr Subcommand kSubcommands[] = {
    {"vhost-user", &ember::vmm::vhost_user::run_vhost_user_command},
};

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) {
    for (const auto& sub : kSubcommands) {
      if (std::strcmp(argv[1], sub.name) == 0) return sub.run(argc - 1, argv + 1);
    }
  }
  return ember::vmm::api::run_vmm_process(argc, argv);
}
