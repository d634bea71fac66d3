// libFuzzer target: virtio-blk request parsing and execution over a request
// queue whose descriptors, headers and buffers come from the fuzzer.
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "vmm/devices/virtio/block/block_device.h"
#include "vmm/devices/virtio/testing/driver_queue.h"

using namespace ember::vmm;
using namespace ember::vmm::virtio;

namespace {

std::string disk_path() { return "/tmp/ember-fuzz-block-" + std::to_string(::getpid()) + ".img"; }

std::string make_disk() {
  std::string path = disk_path();
  // libFuzzer ends with exit(): remove the image then (a crash leaves it).
  std::atexit([] { ::unlink(disk_path().c_str()); });
  ember::common::UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  std::vector<uint8_t> data(64 * 1024 + 100, 0x5a);
  if (::write(fd.get(), data.data(), data.size()) < 0) abort();
  return path;
}

struct NullInterrupt : Interrupt {
  void signal_used_queue(uint16_t) override {}
  void signal_config_change() override {}
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::string disk = make_disk();
  static Logger logger;
  static bool quiet = [] {
    LoggerConfig c;
    c.level = LogLevel::kOff;
    logger.configure(c);
    return true;
  }();
  (void)quiet;
  static Metrics metrics;
  static GuestMemory memory = GuestMemory::anonymous({{GuestAddress(0), 0x20000}});
  static ember::common::EventLoop loop;
  NullInterrupt interrupt;
  if (size < 4) return 0;

  DriveConfig config;
  config.drive_id = "fuzz";
  config.path_on_host = disk;
  config.is_read_only = data[0] & 1;
  config.cache_type = (data[0] & 2) ? CacheType::kWriteback : CacheType::kUnsafe;
  uint64_t features =
      (uint64_t(1) << kFeatureVersion1) | ((data[0] & 4) ? uint64_t(1) << kFeatureIndirectDesc : 0);
  uint16_t chains = data[1] % 16;
  data += 4;
  size -= 4;

  // Guest memory: the rings at 0x0 (size 16) are built by the driver below;
  // everything from 0x1000 is fuzzer bytes (headers, data, tables).
  std::vector<uint8_t> image(0x1f000, 0);
  std::memcpy(image.data(), data, std::min(size, image.size()));
  memory.write(GuestAddress(0x1000), image);

  testing::GuestAllocator allocator(GuestAddress(0), 0x1000);
  testing::DriverQueue driver(memory, allocator, 16);
  // Each chain: descriptors taken from the fuzzer image (addr, len, flags, next).
  for (uint16_t c = 0; c < chains && c * 16 + 16 <= size; ++c) {
    const uint8_t* d = data + c * 16;
    uint32_t addr, len;
    uint16_t flags, next;
    std::memcpy(&addr, d, 4);
    std::memcpy(&len, d + 4, 4);
    std::memcpy(&flags, d + 8, 2);
    std::memcpy(&next, d + 10, 2);
    driver.write_descriptor(c, addr % 0x30000, len % 0x20000, flags & 7, next % 17);
    if (d[12] & 1) driver.publish(c);
  }
  try {
    BlockDevice device(config, logger, metrics);
    auto guard = device.lock();
    device.activate(ActivationContext{memory, {driver.state()}, features, interrupt, loop});
    device.process_queue(0);
    device.reset();
  } catch (const ember::common::Error&) {
  }
  return 0;
}
