#include "vmm/devices/virtio/net/tap.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>

#include <cstring>

#include "vmm/common/error.h"

namespace ember::vmm::virtio {

Tap Tap::open(const std::string& name) {
  std::string what = "open tap \"" + name + "\"";
  if (name.empty() || name.size() >= IFNAMSIZ) {
    throw common::Error(what + ": interface names are 1 to " + std::to_string(IFNAMSIZ - 1) +
                        " bytes");
  }
  Tap tap;
  tap.fd_.reset(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (!tap.fd_) common::throw_errno(what + ": /dev/net/tun");
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, name.data(), name.size());
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  if (::ioctl(tap.fd_.get(), TUNSETIFF, &ifr) < 0) common::throw_errno(what + ": TUNSETIFF");
  int hdr = kVnetHeaderSize;
  if (::ioctl(tap.fd_.get(), TUNSETVNETHDRSZ, &hdr) < 0)
    common::throw_errno(what + ": TUNSETVNETHDRSZ");
  tap.name_ = name;
  return tap;
}

void Tap::set_offload(unsigned flags) const {
  if (::ioctl(fd_.get(), TUNSETOFFLOAD, static_cast<unsigned long>(flags)) < 0) {
    common::throw_errno("tap \"" + name_ + "\": TUNSETOFFLOAD");
  }
}

}  // namespace ember::vmm::virtio
