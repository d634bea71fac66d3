// A host tap device for virtio-net (reference/firecracker-compat.md §5):
// /dev/net/tun attached to an existing interface with
// IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, a 12-byte virtio_net_hdr_v1 in front of
// every frame, non-blocking.
#pragma once

#include <string>

#include "vmm/common/unique_fd.h"

namespace ember::vmm::virtio {

inline constexpr int kVnetHeaderSize = 12;

class Tap {
 public:
  // Throws common::Error: `open tap "tap0": TUNSETIFF: Operation not permitted`.
  static Tap open(const std::string& name);

  // TUNSETOFFLOAD with TUN_F_* flags; throws common::Error on failure.
  void set_offload(unsigned flags) const;

  int fd() const { return fd_.get(); }
  const std::string& name() const { return name_; }

 private:
  common::UniqueFd fd_;
  std::string name_;
};

}  // namespace ember::vmm::virtio
