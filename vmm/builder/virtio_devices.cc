// Device factories: config structs -> device models (vmm/devices/virtio/).
// Nothing here touches an event loop; devices register their fds when the
// transport activates them.
#include "vmm/builder/virtio_devices.h"

#include "vmm/common/error.h"
#include "vmm/devices/virtio/block/block_device.h"
#include "vmm/devices/virtio/net/net_device.h"
#include "vmm/devices/virtio/rng/entropy_device.h"
#include "vmm/devices/virtio/vsock/vsock_device.h"

namespace ember::vmm {

std::unique_ptr<virtio::VirtioDevice> create_block_device(const DriveConfig& config, Logger& logger,
                                                          Metrics& metrics) {
  if (config.socket) {
    throw common::Error("drive \"" + config.drive_id +
                        "\": vhost-user-blk drives (socket) are not supported");
  }
  if (!config.path_on_host)
    throw common::Error("drive \"" + config.drive_id + "\": path_on_host is missing");
  return std::make_unique<virtio::BlockDevice>(config, logger, metrics);
}

std::unique_ptr<virtio::VirtioDevice> create_net_device(const NetworkInterfaceConfig& config,
                                                        Logger& logger, Metrics& metrics) {
  return std::make_unique<virtio::NetDevice>(config, logger, metrics);
}

std::unique_ptr<virtio::VirtioDevice> create_vsock_device(const VsockConfig& config, Logger& logger,
                                                          Metrics& metrics) {
  if (config.guest_cid < 3) {
    throw common::Error("vsock: guest_cid " + std::to_string(config.guest_cid) +
                        " is reserved (must be >= 3)");
  }
  return std::make_unique<virtio::VsockDevice>(config, logger, metrics);
}

std::unique_ptr<virtio::VirtioDevice> create_entropy_device(const EntropyConfig& config,
                                                            Logger& logger, Metrics& metrics) {
  return std::make_unique<virtio::EntropyDevice>(config, logger, metrics);
}

void update_block_device(virtio::VirtioDevice& device, const DriveUpdate& update) {
  auto* block = dynamic_cast<virtio::BlockDevice*>(&device);
  if (!block) throw common::Error("drive \"" + update.drive_id + "\": not a virtio-blk device");
  block->update(update);
}

void update_net_device(virtio::VirtioDevice& device, const NetworkInterfaceUpdate& update) {
  auto* net = dynamic_cast<virtio::NetDevice*>(&device);
  if (!net)
    throw common::Error("network interface \"" + update.iface_id + "\": not a virtio-net device");
  net->update(update);
}

}  // namespace ember::vmm
