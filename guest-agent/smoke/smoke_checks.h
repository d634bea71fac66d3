// What ember-guest-smoke reports about the guest, computed from /proc and
// /sys trees given by path so tests can run the same code on a fake tree of
// real files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace ember::agent::smoke {

// One device on the virtio bus (/sys/bus/virtio/devices/virtioN).
struct VirtioDeviceInfo {
  std::string name;         // "virtio0"
  uint32_t device_id = 0;   // virtio 1.2 §5: 1 net, 2 block, 3 console, 4 entropy, 19 vsock
  std::string driver;       // bound driver ("virtio_blk"), "none" when unbound
  std::string block;        // block device name when it is a disk ("vda")
  std::string net;          // interface name when it is a NIC ("eth0")
  uint64_t features = 0;    // negotiated feature bits (sysfs prints bit i as char i)
};

// Devices sorted by their index (virtio2 before virtio10). Throws
// common::Error naming the file when an entry cannot be read.
std::vector<VirtioDeviceInfo> list_virtio_devices(const std::filesystem::path& sysfs_root);

// "EMBER-VIRTIO virtio0 device=0x0002 driver=virtio_blk features=0x... block=vda"
std::string format_virtio_line(const VirtioDeviceInfo& device);

// First field of /proc/uptime, as the kernel printed it ("0.53").
std::string read_uptime(const std::filesystem::path& proc_root);

// Actions named by `ember.smoke=a,b,c` on the kernel command line, in order;
// `fallback` when the parameter is absent. `ember.smoke=` selects none.
std::vector<std::string> smoke_actions(const std::string& cmdline,
                                       const std::vector<std::string>& fallback);

// The whole content of a small file (sysfs, procfs); throws common::Error
// naming the path when it cannot be read.
std::string read_text_file(const std::filesystem::path& path);

}  // namespace ember::agent::smoke
