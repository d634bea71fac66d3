// `ember-vmm vhost-user`: serves ember's devices to vhost-user frontends
// (QEMU), one device per socket, until SIGINT or SIGTERM.
//
//   ember-vmm vhost-user --socket /run/blk0.sock --device blk,path=/img/rootfs.ext4[,readonly]
//                        --socket /run/vsock.sock --device vsock,guest-cid=3,uds-path=/run/v.sock
//                        [--socket /run/rng.sock --device rng]
//                        [--log-path PATH] [--level Error|Warning|Info|Debug|Trace] [--metrics-path
//                        PATH]
//
// Each --device is served on the --socket given before it. A frontend that
// disconnects can reconnect (the backend keeps listening); SIGINT/SIGTERM
// reset the devices, remove the sockets and exit 0. A thin wrapper over
// VhostUserBackend (vhost_user_backend.h).
#pragma once

namespace ember::vmm::vhost_user {

// argv[0] is the command's own name (ignored); options follow. Returns the
// exit status: 0 after a clean shutdown, 1 when a device or socket could not
// be set up, 2 for a usage error. Messages go to stderr and the log.
int run_vhost_user_command(int argc, char** argv);

}  // namespace ember::vmm::vhost_user
