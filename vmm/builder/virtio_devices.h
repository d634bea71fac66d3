// Factories for ember's virtio devices, one per device type, and their
// post-boot updates. The builder calls these; the device models live in
// vmm/devices/virtio/<type>/.
//
// Contract (for whoever implements a device):
//  * create_*: validate the config and open what the device needs (files,
//    taps, sockets), throwing common::Error that names the device id and the
//    problem, e.g. `drive "rootfs": open /x.img: No such file or directory`.
//    Do not register anything with an event loop here: the device gets its
//    loop, guest memory, queues and interrupt in VirtioDevice::activate().
//  * update_*: called on the VMM's device thread with the device's lock()
//    held, after boot (PATCH /drives, PATCH /network-interfaces). Throw
//    common::Error naming the id on bad input. A block device whose backing
//    file changed raises a config-change interrupt itself.
#pragma once

#include <memory>

#include "vmm/devices/virtio/virtio_device.h"
#include "vmm/logger/logger.h"
#include "vmm/logger/metrics.h"
#include "vmm/vmm_config/vmm_config.h"

namespace ember::vmm {

std::unique_ptr<virtio::VirtioDevice> create_block_device(const DriveConfig& config, Logger& logger,
                                                          Metrics& metrics);
std::unique_ptr<virtio::VirtioDevice> create_net_device(const NetworkInterfaceConfig& config, Logger& logger,
                                                        Metrics& metrics);
std::unique_ptr<virtio::VirtioDevice> create_vsock_device(const VsockConfig& config, Logger& logger,
                                                          Metrics& metrics);
std::unique_ptr<virtio::VirtioDevice> create_entropy_device(const EntropyConfig& config, Logger& logger,
                                                            Metrics& metrics);

void update_block_device(virtio::VirtioDevice& device, const DriveUpdate& update);
void update_net_device(virtio::VirtioDevice& device, const NetworkInterfaceUpdate& update);

}  // namespace ember::vmm
