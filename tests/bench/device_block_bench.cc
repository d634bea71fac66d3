// virtio-blk device model throughput, host side: requests built by the test
// driver in real virtqueues, served by BlockDevice's Sync engine, against
// plain pread/pwrite of the same sizes on the same (page-cached) file in the
// same run. Prints MB/s (or kIOPS) and the device/raw ratio per workload.
//
//   device_block_bench [file_mib=128] [seconds_per_case=1]
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>

#include "vmm/devices/virtio/block/block_device.h"
#include "vmm/devices/virtio/testing/driver_queue.h"

using namespace ember::vmm;
using namespace ember::vmm::virtio;
using Clock = std::chrono::steady_clock;

namespace {

constexpr uint64_t kMemSize = 96ull << 20;

struct Result {
  double bytes_per_s;
  double ops_per_s;
};

// Runs `op` (which does `batch` operations of `size` bytes) until `seconds` pass.
Result measure(double seconds, size_t size, int batch, const std::function<void()>& op) {
  op();  // warm up
  uint64_t ops = 0;
  auto start = Clock::now();
  double elapsed = 0;
  do {
    op();
    ops += static_cast<uint64_t>(batch);
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  } while (elapsed < seconds);
  return {static_cast<double>(ops * size) / elapsed, static_cast<double>(ops) / elapsed};
}

struct NullInterrupt : Interrupt {
  void signal_used_queue(uint16_t) override {}
  void signal_config_change() override {}
};

}  // namespace

int main(int argc, char** argv) {
  uint64_t file_mib = argc > 1 ? std::stoull(argv[1]) : 128;
  double seconds = argc > 2 ? std::stod(argv[2]) : 1.0;
  uint64_t file_size = file_mib << 20;

  std::string path = "/tmp/ember-block-bench-" + std::to_string(::getpid()) + ".img";
  {
    ember::common::UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    std::vector<uint8_t> chunk(1 << 20, 0x3c);
    for (uint64_t off = 0; off < file_size; off += chunk.size()) {
      if (::pwrite(fd.get(), chunk.data(), chunk.size(), static_cast<off_t>(off)) < 0) {
        std::perror("create bench file");
        return 1;
      }
    }
  }
  ember::common::UniqueFd raw(::open(path.c_str(), O_RDWR | O_CLOEXEC));

  Logger logger;
  Metrics metrics;
  GuestMemory memory = GuestMemory::anonymous({{GuestAddress(0), kMemSize}});
  testing::GuestAllocator allocator(GuestAddress(0x1000), kMemSize - 0x1000);
  NullInterrupt interrupt;
  ember::common::EventLoop loop;
  // One drive per io engine, each with its own queue over the same memory.
  struct Drive {
    testing::DriverQueue driver;
    BlockDevice device;
  };
  auto make_drive = [&](IoEngine engine) {
    DriveConfig config;
    config.drive_id = engine == IoEngine::kAsync ? "bench-async" : "bench-sync";
    config.path_on_host = path;
    config.io_engine = engine;
    auto d = std::unique_ptr<Drive>(
        new Drive{testing::DriverQueue(memory, allocator, 256), BlockDevice(config, logger, metrics)});
    auto guard = d->device.lock();
    d->device.activate(
        ActivationContext{memory,
                          {d->driver.state()},
                          (uint64_t(1) << kFeatureVersion1) | (uint64_t(1) << kFeatureEventIdx),
                          interrupt,
                          loop});
    return d;
  };
  auto sync_drive = make_drive(IoEngine::kSync);
  auto async_drive = make_drive(IoEngine::kAsync);

  // Per-slot request buffers: header, data (up to 1 MiB), status.
  constexpr int kSlots = 32;
  struct Slot {
    GuestAddress header, data, status;
  };
  std::vector<Slot> slots(kSlots);
  for (auto& s : slots) {
    s.header = allocator.alloc(16);
    s.data = allocator.alloc(1 << 20, 4096);
    s.status = allocator.alloc(1);
  }
  // The raw path gets as many buffers as the queue depth, mapped the way
  // guest RAM is (anonymous, demand paged), so both copy into alike memory.
  ember::common::Mapping host_buffer =
      ember::common::Mapping::anonymous(kSlots << 20, "raw buffers");
  std::memset(host_buffer.data(), 0x11, host_buffer.size());
  std::mt19937_64 rng(7);
  uint64_t seq_offset = 0;

  auto next_offset = [&](size_t size, bool random) {
    if (random) return (rng() % (file_size / size)) * size;
    uint64_t off = seq_offset;
    seq_offset = (seq_offset + size) % file_size;
    return off;
  };

  // One batch of `depth` requests posted at once, one kick, all completed
  // (the Async engine's completions come through the loop).
  auto device_batch = [&](Drive& drive, uint32_t type, size_t size, int depth, bool random) {
    testing::DriverQueue& driver = drive.driver;
    BlockDevice& device = drive.device;
    for (int i = 0; i < depth; ++i) {
      struct {
        uint32_t type, reserved;
        uint64_t sector;
      } hdr{type, 0, next_offset(size, random) / 512};
      memory.write_obj(slots[i].header, hdr);
      driver.add_chain(
          {testing::Buffer{slots[i].header, 16, false},
           testing::Buffer{slots[i].data, static_cast<uint32_t>(size), type == kBlockTypeIn},
           testing::Buffer{slots[i].status, 1, true}});
    }
    {
      auto guard = device.lock();
      device.process_queue(0);
    }
    while (device.requests_in_flight() > 0) loop.run_once(1000);
    int done = 0;
    while (driver.next_used()) ++done;
    if (done != depth) {
      std::fprintf(stderr, "device completed %d of %d requests\n", done, depth);
      std::exit(1);
    }
  };
  auto raw_batch = [&](bool write, size_t size, int depth, bool random) {
    for (int i = 0; i < depth; ++i) {
      off_t off = static_cast<off_t>(next_offset(size, random));
      uint8_t* buf = host_buffer.data() + (size_t(i) << 20);
      ssize_t n = write ? ::pwrite(raw.get(), buf, size, off) : ::pread(raw.get(), buf, size, off);
      if (n != static_cast<ssize_t>(size)) std::exit(1);
    }
  };

  struct Case {
    const char* name;
    bool write;
    size_t size;
    int depth;
    bool random;
  };
  const Case cases[] = {
      {"4k-randread-qd1", false, 4096, 1, true},    {"4k-randread-qd32", false, 4096, 32, true},
      {"1m-seqread-qd1", false, 1 << 20, 1, false}, {"1m-seqread-qd32", false, 1 << 20, 32, false},
      {"1m-seqwrite-qd1", true, 1 << 20, 1, false}, {"1m-seqwrite-qd32", true, 1 << 20, 32, false},
  };
  std::printf(
      "virtio-blk device model (Sync and Async engines) vs pread/pwrite, %llu MiB page-cached "
      "file, %.1f s per case%s\n",
      static_cast<unsigned long long>(file_mib), seconds,
      async_drive->device.async() ? "" : " (io_uring unavailable: Async ran as Sync)");
  std::printf("%-18s %14s %14s %14s %7s %7s\n", "case", "sync", "async", "raw", "sync", "async");
  for (const Case& c : cases) {
    uint32_t type = c.write ? kBlockTypeOut : kBlockTypeIn;
    seq_offset = 0;
    Result dev = measure(seconds, c.size, c.depth,
                         [&] { device_batch(*sync_drive, type, c.size, c.depth, c.random); });
    seq_offset = 0;
    Result async = measure(seconds, c.size, c.depth,
                           [&] { device_batch(*async_drive, type, c.size, c.depth, c.random); });
    seq_offset = 0;
    Result base =
        measure(seconds, c.size, c.depth, [&] { raw_batch(c.write, c.size, c.depth, c.random); });
    if (c.size < (1 << 20)) {
      std::printf("%-18s %8.1f kIOPS %8.1f kIOPS %8.1f kIOPS %6.0f%% %6.0f%%\n", c.name,
                  dev.ops_per_s / 1e3, async.ops_per_s / 1e3, base.ops_per_s / 1e3,
                  100 * dev.ops_per_s / base.ops_per_s, 100 * async.ops_per_s / base.ops_per_s);
    } else {
      std::printf("%-18s %9.0f MB/s %9.0f MB/s %9.0f MB/s %6.0f%% %6.0f%%\n", c.name,
                  dev.bytes_per_s / 1e6, async.bytes_per_s / 1e6, base.bytes_per_s / 1e6,
                  100 * dev.bytes_per_s / base.bytes_per_s, 100 * async.bytes_per_s / base.bytes_per_s);
    }
    std::fflush(stdout);
  }
  ::unlink(path.c_str());
  return 0;
}
