// ember-vhost-user: `ember-vmm vhost-user` as a program of its own, for tests
// and for hosts that run the backends apart from the VMM.
#include "vmm/vhost_user/cli.h"

int main(int argc, char** argv) {
  return ember::vmm::vhost_user::run_vhost_user_command(argc, argv);
}
