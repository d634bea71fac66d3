// The `--device` argument of `ember-vmm vhost-user`: which ember device a
// backend serves, as a comma-separated spec.
//
//   blk,path=FILE[,readonly][,id=ID][,cache=unsafe|writeback][,engine=sync|async]
//   vsock,guest-cid=N,uds-path=PATH
//   rng
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "vmm/devices/virtio/virtio_device.h"
#include "vmm/logger/logger.h"
#include "vmm/logger/metrics.h"
#include "vmm/vmm_config/vmm_config.h"

namespace ember::vmm::vhost_user {

struct DeviceSpec {
  virtio::DeviceType type = virtio::DeviceType::kBlock;
  std::string id;         // id= (blk), else empty
  DriveConfig drive;      // blk
  VsockConfig vsock;      // vsock
  EntropyConfig entropy;  // rng
};

// Throws common::Error naming the spec and the offending part.
DeviceSpec parse_device_spec(std::string_view spec);

// Builds the device (opens the drive, binds the vsock socket); throws
// common::Error naming what failed.
std::unique_ptr<virtio::VirtioDevice> make_device(const DeviceSpec& spec, Logger& logger,
                                                  Metrics& metrics);

}  // namespace ember::vmm::vhost_user
