#include "guest-agent/agent/block_devices.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <thread>

#include "vmm/common/error.h"
#include "vmm/common/unique_fd.h"

namespace ember::agent {
namespace {

std::string read_trimmed(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\0')) s.pop_back();
  return s;
}

}  // namespace

std::string resolve_block_device(const std::string& device, const std::string& serial,
                                 const std::string& sys_block) {
  if (serial.empty()) {
    if (device.empty()) throw common::Error("filesystem has neither a device nor a serial");
    return device;
  }
  DIR* dir = ::opendir(sys_block.c_str());
  if (!dir) common::throw_errno("list " + sys_block + " to find serial " + serial);
  std::string found;
  while (dirent* e = ::readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    std::string name = e->d_name;
    // virtio-blk exposes the serial at /sys/block/vdX/serial; other drivers
    // under device/serial.
    std::string s = read_trimmed(sys_block + "/" + name + "/serial");
    if (s.empty()) s = read_trimmed(sys_block + "/" + name + "/device/serial");
    if (s == serial) {
      found = "/dev/" + name;
      break;
    }
  }
  ::closedir(dir);
  if (found.empty()) throw common::Error("no block device has serial \"" + serial + "\"");
  if (!device.empty() && device != found) {
    throw common::Error("block device serial \"" + serial + "\" is " + found + ", not " + device);
  }
  return found;
}

uint64_t block_device_size(const std::string& device) {
  common::UniqueFd fd(::open(device.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd) common::throw_errno("open " + device);
  uint64_t size = 0;
  if (::ioctl(fd.get(), BLKGETSIZE64, &size) < 0) common::throw_errno("read the size of " + device);
  return size;
}

void flush_block_device(const std::string& device) {
  struct stat st {};
  if (::stat(device.c_str(), &st) < 0 || !S_ISBLK(st.st_mode)) return;
  common::UniqueFd fd(::open(device.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd) common::throw_errno("open " + device);
  ::fsync(fd.get());
  if (::ioctl(fd.get(), BLKFLSBUF, 0) < 0) common::throw_errno("flush cached blocks of " + device);
}

uint64_t wait_for_block_device(const std::string& device, uint64_t expected,
                               std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string last = "it does not exist";
  for (;;) {
    struct stat st {};
    if (::stat(device.c_str(), &st) == 0) {
      if (!S_ISBLK(st.st_mode)) throw common::Error(device + " is not a block device");
      try {
        uint64_t size = block_device_size(device);
        if (size != 0 && (expected == 0 || size == expected)) return size;
        last = "its size is " + std::to_string(size) + " bytes";
      } catch (const common::Error& e) {
        last = e.what();
      }
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      throw common::Error("wait for block device " + device +
                          (expected ? " of " + std::to_string(expected) + " bytes"
                                    : std::string(" to have a size")) +
                          ": timed out after " + std::to_string(timeout.count()) + " ms, " + last);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace ember::agent
