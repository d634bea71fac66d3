// What the vhost-user transport costs ember's block device: 64 KiB reads
// from a file in the page cache, driven (a) directly, the device's
// process_queue() called on the driver's thread (the device-model baseline),
// and (b) through VhostUserBackend by a frontend in another thread: kick
// eventfd -> backend thread -> call eventfd, with the rings in a shared memfd.
// Queue depth 1 (one round trip per request) and 32 (one kick per batch).
// Prints requests/s, MiB/s and the ratio of (b) to (a).
//
// usage: vhost_user_block_bench [seconds per case, default 1]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "tests/harness/temp_dir.h"
#include "vmm/devices/virtio/block/block_device.h"
#include "vmm/devices/virtio/block/request.h"
#include "vmm/devices/virtio/testing/driver_queue.h"
#include "vmm/vhost_user/testing/fake_frontend.h"
#include "vmm/vhost_user/vhost_user_backend.h"

namespace {

using namespace std::chrono_literals;
using namespace ember;
using vmm::GuestAddress;
using vmm::virtio::testing::GuestAllocator;

constexpr uint64_t kDiskBytes = 64 << 20;
constexpr uint32_t kRequestBytes = 64 << 10;
constexpr uint64_t kMemBytes = 64 << 20;

// One preallocated read request per slot: header, data, status.
struct Slot {
  GuestAddress header;
  GuestAddress data;
  GuestAddress status;
};

std::vector<Slot> make_slots(const vmm::GuestMemory& memory, GuestAllocator& allocator,
                             size_t count) {
  std::vector<Slot> slots;
  for (size_t i = 0; i < count; ++i) {
    Slot s{allocator.alloc(16), allocator.alloc(kRequestBytes, 4096), allocator.alloc(1)};
    uint32_t type = vmm::virtio::kBlockTypeIn;
    uint64_t sector = (i * kRequestBytes % kDiskBytes) / 512;
    std::vector<uint8_t> header(16, 0);
    std::memcpy(header.data(), &type, 4);
    std::memcpy(header.data() + 8, &sector, 8);
    memory.write(s.header, header);
    slots.push_back(s);
  }
  return slots;
}

void post(vmm::virtio::testing::DriverQueue& queue, const Slot& s) {
  queue.add_chain({{s.header, 16, false}, {s.data, kRequestBytes, true}, {s.status, 1, true}});
}

struct Result {
  double requests_per_s;
  double mib_per_s;
};

// Runs batches of `depth` requests for `seconds`; `submit` makes a batch
// available and waits until it is used.
Result measure(double seconds, size_t depth, const std::function<void()>& batch) {
  auto start = std::chrono::steady_clock::now();
  auto end = start + std::chrono::duration<double>(seconds);
  uint64_t requests = 0;
  while (std::chrono::steady_clock::now() < end) {
    batch();
    requests += depth;
  }
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return {requests / elapsed, requests * double(kRequestBytes) / elapsed / (1 << 20)};
}

Result direct(const std::string& disk, size_t depth, double seconds) {
  vmm::Logger logger;
  vmm::Metrics metrics;
  vmm::DriveConfig drive;
  drive.drive_id = "bench";
  drive.path_on_host = disk;
  vmm::virtio::BlockDevice device(drive, logger, metrics);
  auto memory = vmm::GuestMemory::anonymous({{GuestAddress(0), kMemBytes}});
  GuestAllocator allocator(GuestAddress(0x1000), kMemBytes - 0x1000);
  vmm::virtio::testing::DriverQueue queue(memory, allocator, 256);
  vmm::virtio::testing::RecordingInterrupt interrupt;
  common::EventLoop loop;
  uint64_t features = device.available_features();
  {
    auto guard = device.lock();
    device.activate(
        vmm::virtio::ActivationContext{memory, {queue.state()}, features, interrupt, loop});
  }
  auto slots = make_slots(memory, allocator, depth);
  return measure(seconds, depth, [&] {
    for (const Slot& s : slots) post(queue, s);
    {
      auto guard = device.lock();
      device.process_queue(0);
    }
    for (size_t i = 0; i < depth; ++i) {
      if (!queue.next_used()) std::abort();
    }
  });
}

Result over_vhost_user(const std::string& disk, const std::string& socket, size_t depth,
                       double seconds) {
  vmm::Logger logger;
  vmm::LoggerConfig quiet;
  quiet.level = vmm::LogLevel::kError;
  logger.configure(quiet);
  vmm::Metrics metrics;
  vmm::DriveConfig drive;
  drive.drive_id = "bench";
  drive.path_on_host = disk;
  vmm::vhost_user::VhostUserBackend backend(
      socket, std::make_unique<vmm::virtio::BlockDevice>(drive, logger, metrics), logger, metrics);
  backend.start();
  vmm::vhost_user::testing::SharedGuestMemory memory(GuestAddress(0), kMemBytes);
  GuestAllocator allocator(GuestAddress(0x1000), kMemBytes - 0x1000);
  vmm::vhost_user::testing::FrontendRing ring(memory.memory(), allocator, 256);
  auto frontend = vmm::vhost_user::testing::FakeFrontend::connect(socket);
  frontend.start(frontend.handshake(), memory, {&ring});
  auto slots = make_slots(memory.memory(), allocator, depth);
  Result r = measure(seconds, depth, [&] {
    for (const Slot& s : slots) post(ring.queue, s);
    ring.notify();
    size_t done = 0;
    while (done < depth) {
      while (ring.queue.next_used()) ++done;
      if (done == depth) break;
      // VIRTIO_RING_F_EVENT_IDX: ask for the interrupt at the next entry.
      ring.queue.set_used_event(ring.queue.used_idx());
      if (ring.queue.next_used()) {
        ++done;
        continue;
      }
      if (!ring.wait_call(5s)) std::abort();
    }
  });
  backend.stop();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = argc > 1 ? std::atof(argv[1]) : 1.0;
  ember::testing::TempDir dir("ember-vu-bench");
  std::string disk = (dir / "disk.img").string();
  {
    std::vector<char> chunk(1 << 20, 'e');
    std::ofstream out(disk, std::ios::binary);
    for (uint64_t i = 0; i < kDiskBytes; i += chunk.size()) out.write(chunk.data(), chunk.size());
  }
  std::printf("virtio-blk 64 KiB reads from the page cache, %.1f s per case\n", seconds);
  std::printf("%-6s %-22s %12s %10s %8s\n", "depth", "path", "requests/s", "MiB/s", "ratio");
  for (size_t depth : {1, 32}) {
    Result base = direct(disk, depth, seconds);
    Result vu = over_vhost_user(disk, (dir / "vu.sock").string(), depth, seconds);
    std::printf("%-6zu %-22s %12.0f %10.0f %8s\n", depth, "direct process_queue",
                base.requests_per_s, base.mib_per_s, "1.00");
    std::printf("%-6zu %-22s %12.0f %10.0f %8.2f\n", depth, "vhost-user (2 threads)",
                vu.requests_per_s, vu.mib_per_s, vu.requests_per_s / base.requests_per_s);
  }
  return 0;
}
