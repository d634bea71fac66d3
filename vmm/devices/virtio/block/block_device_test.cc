#include "vmm/devices/virtio/block/block_device.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <numeric>

#include "vmm/devices/virtio/testing/driver_queue.h"

namespace ember::vmm::virtio {
namespace {

using testing::Buffer;
using testing::DriverQueue;
using testing::GuestAllocator;
using testing::RecordingInterrupt;

constexpr uint64_t kMemSize = 8 << 20;
constexpr uint64_t kFeatures = (uint64_t(1) << kFeatureVersion1) |
                               (uint64_t(1) << kFeatureIndirectDesc) |
                               (uint64_t(1) << kFeatureEventIdx);

// A temporary file filled with a recognisable pattern: byte i is (i * 7 + seed) & 0xff.
class TempDisk {
 public:
  TempDisk(uint64_t size, uint8_t seed = 0) {
    char tmpl[] = "/tmp/ember-block-test-XXXXXX";
    int fd = ::mkstemp(tmpl);
    if (fd < 0) throw std::runtime_error("mkstemp");
    common::UniqueFd owner(fd);
    path_ = tmpl;
    std::vector<uint8_t> data(size);
    for (uint64_t i = 0; i < size; ++i) data[i] = static_cast<uint8_t>(i * 7 + seed);
    if (::pwrite(fd, data.data(), data.size(), 0) != static_cast<ssize_t>(size))
      throw std::runtime_error("pwrite");
  }
  ~TempDisk() { ::unlink(path_.c_str()); }
  const std::string& path() const { return path_; }
  std::vector<uint8_t> read(uint64_t offset, size_t len) const {
    std::vector<uint8_t> out(len);
    common::UniqueFd fd(::open(path_.c_str(), O_RDONLY));
    EXPECT_EQ(::pread(fd.get(), out.data(), len, static_cast<off_t>(offset)),
              static_cast<ssize_t>(len));
    return out;
  }
  static uint8_t expected(uint64_t i, uint8_t seed = 0) {
    return static_cast<uint8_t>(i * 7 + seed);
  }

 private:
  std::string path_;
};

std::vector<uint8_t> header(uint32_t type, uint64_t sector) {
  std::vector<uint8_t> h(16, 0);
  std::memcpy(h.data(), &type, 4);
  std::memcpy(h.data() + 8, &sector, 8);
  return h;
}

// Every test runs against both io engines: Sync, and Async (io_uring), whose
// completions arrive on the loop; kick() waits for them, so the same
// expectations hold for both.
struct BlockFixture : ::testing::TestWithParam<IoEngine> {
  TempDisk disk{64 * 1024};
  Logger logger;
  Metrics metrics;
  GuestMemory memory = GuestMemory::anonymous({{GuestAddress(0), kMemSize}});
  GuestAllocator allocator{GuestAddress(0x1000), kMemSize - 0x1000};
  DriverQueue driver{memory, allocator, 256};
  RecordingInterrupt interrupt;
  common::EventLoop loop;
  std::unique_ptr<BlockDevice> device;

  DriveConfig config(bool read_only = false, CacheType cache = CacheType::kUnsafe) {
    DriveConfig c;
    c.drive_id = "rootfs";
    c.path_on_host = disk.path();
    c.is_read_only = read_only;
    c.cache_type = cache;
    c.io_engine = GetParam();
    return c;
  }
  void start(const DriveConfig& c) {
    device = std::make_unique<BlockDevice>(c, logger, metrics);
    if (c.io_engine == IoEngine::kAsync) {
      ASSERT_TRUE(device->async()) << "io_uring unavailable here";
    }
    auto guard = device->lock();
    device->activate(ActivationContext{memory, {driver.state()}, kFeatures, interrupt, loop});
  }
  void kick() {
    kick_without_waiting();
    settle();
  }
  void kick_without_waiting() {
    auto guard = device->lock();
    device->process_queue(0);
  }
  // Runs the loop until the Async engine has nothing in flight.
  void settle() {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (in_flight() > 0 && std::chrono::steady_clock::now() < deadline) loop.run_once(100);
    ASSERT_EQ(in_flight(), 0u) << "io_uring completions never arrived";
  }
  size_t in_flight() {
    auto guard = device->lock();
    return device->requests_in_flight();
  }
  Buffer put(const std::vector<uint8_t>& data) {
    return Buffer{testing::put_bytes(memory, allocator, data), static_cast<uint32_t>(data.size()),
                  false};
  }
  Buffer out(uint32_t len) { return Buffer{allocator.alloc(len), len, true}; }
  uint8_t status_of(const Buffer& b) {
    return testing::get_bytes(memory, b.addr + (b.len - 1), 1)[0];
  }
  // The builder calls update() with the device lock held.
  void update(const DriveUpdate& u) {
    auto guard = device->lock();
    device->update(u);
  }
  uint64_t metric(const std::string& group, const std::string& name) {
    return metrics.counter(group, name).load();
  }
};

TEST_P(BlockFixture, ReadsSectorsIntoBuffersSplitAnywhere) {
  start(config());
  Buffer a = out(100), b = out(1024 - 100), status = out(1);
  uint16_t head = driver.add_chain({put(header(kBlockTypeIn, 3)), a, b, status});
  kick();
  auto used = driver.next_used();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->id, head);
  EXPECT_EQ(used->len, 1025u);
  EXPECT_EQ(status_of(status), kBlockStatusOk);
  auto got = testing::get_bytes(memory, a.addr, 100);
  auto rest = testing::get_bytes(memory, b.addr, 924);
  got.insert(got.end(), rest.begin(), rest.end());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], TempDisk::expected(3 * 512 + i)) << i;
  EXPECT_EQ(interrupt.used[0], 1);
  EXPECT_EQ(metric("block_rootfs", "read_bytes"), 1024u);
  EXPECT_EQ(metric("block", "read_bytes"), 1024u) << "aggregate group";
  EXPECT_EQ(metric("block_rootfs", "read_count"), 1u);
}

TEST_P(BlockFixture, WritesSectorsFromHeaderAndDataInOneBuffer) {
  start(config());
  std::vector<uint8_t> req = header(kBlockTypeOut, 10);
  std::vector<uint8_t> data(2048);
  std::iota(data.begin(), data.end(), 1);
  req.insert(req.end(), data.begin(), data.end());
  Buffer status = out(1);
  driver.add_chain({put(req), status});
  kick();
  auto used = driver.next_used();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->len, 1u);
  EXPECT_EQ(status_of(status), kBlockStatusOk);
  EXPECT_EQ(disk.read(10 * 512, 2048), data);
  EXPECT_EQ(metric("block_rootfs", "write_bytes"), 2048u);
}

TEST_P(BlockFixture, ReadDataAndStatusMayShareOneBuffer) {
  start(config());
  Buffer both = out(513);
  driver.add_chain({put(header(kBlockTypeIn, 0)), both});
  kick();
  auto used = driver.next_used();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->len, 513u);
  auto got = testing::get_bytes(memory, both.addr, 513);
  EXPECT_EQ(got[0], TempDisk::expected(0));
  EXPECT_EQ(got[511], TempDisk::expected(511));
  EXPECT_EQ(got[512], kBlockStatusOk);
}

TEST_P(BlockFixture, ServesRequestsThroughIndirectTables) {
  start(config());
  Buffer data = out(512), status = out(1);
  driver.add_chain({put(header(kBlockTypeIn, 1)), data, status}, /*indirect=*/true);
  kick();
  ASSERT_TRUE(driver.next_used());
  EXPECT_EQ(status_of(status), kBlockStatusOk);
  EXPECT_EQ(testing::get_bytes(memory, data.addr, 1)[0], TempDisk::expected(512));
}

TEST_P(BlockFixture, ReadOnlyDriveAdvertisesRoAndRefusesWrites) {
  start(config(/*read_only=*/true));
  EXPECT_TRUE(device->available_features() & (uint64_t(1) << kBlockFeatureRo));
  Buffer status = out(1);
  driver.add_chain({put(header(kBlockTypeOut, 0)), put(std::vector<uint8_t>(512, 0xee)), status});
  kick();
  ASSERT_TRUE(driver.next_used());
  EXPECT_EQ(status_of(status), kBlockStatusIoErr);
  EXPECT_EQ(disk.read(0, 1)[0], TempDisk::expected(0)) << "file untouched";
}

TEST_P(BlockFixture, WritebackAdvertisesFlushAndFlushSucceeds) {
  start(config(false, CacheType::kUnsafe));
  EXPECT_FALSE(device->available_features() & (uint64_t(1) << kBlockFeatureFlush));
  device.reset();
  start(config(false, CacheType::kWriteback));
  EXPECT_TRUE(device->available_features() & (uint64_t(1) << kBlockFeatureFlush));
  Buffer status = out(1);
  driver.add_chain({put(header(kBlockTypeFlush, 0)), status});
  kick();
  ASSERT_TRUE(driver.next_used());
  EXPECT_EQ(status_of(status), kBlockStatusOk);
  EXPECT_EQ(metric("block_rootfs", "flush_count"), 1u);
}

TEST_P(BlockFixture, GetIdReturnsDevRdevInoString) {
  start(config());
  Buffer id = out(20), status = out(1);
  driver.add_chain({put(header(kBlockTypeGetId, 0)), id, status});
  kick();
  auto used = driver.next_used();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->len, 21u);
  EXPECT_EQ(status_of(status), kBlockStatusOk);
  struct stat st {};
  ASSERT_EQ(::stat(disk.path().c_str(), &st), 0);
  std::string expected =
      std::to_string(st.st_dev) + std::to_string(st.st_rdev) + std::to_string(st.st_ino);
  expected.resize(20, '\0');
  auto got = testing::get_bytes(memory, id.addr, 20);
  EXPECT_EQ(std::string(got.begin(), got.end()), expected);
}

TEST_P(BlockFixture, GetIdWithTooSmallBufferFails) {
  start(config());
  Buffer id = out(19), status = out(1);
  driver.add_chain({put(header(kBlockTypeGetId, 0)), id, status});
  kick();
  ASSERT_TRUE(driver.next_used());
  EXPECT_EQ(status_of(status), kBlockStatusIoErr);
}

TEST_P(BlockFixture, CapacityHidesPartialTrailingSector) {
  TempDisk odd(4 * 512 + 100);
  DriveConfig c = config();
  c.path_on_host = odd.path();
  start(c);
  uint64_t capacity = 0;
  device->read_config(0, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&capacity), 8));
  EXPECT_EQ(capacity, 4u);
  // Reading the last whole sector works, the partial one is out of range.
  Buffer s1 = out(1), s2 = out(1);
  driver.add_chain({put(header(kBlockTypeIn, 3)), out(512), s1});
  driver.add_chain({put(header(kBlockTypeIn, 4)), out(512), s2});
  kick();
  EXPECT_EQ(status_of(s1), kBlockStatusOk);
  EXPECT_EQ(status_of(s2), kBlockStatusIoErr);
}

TEST_P(BlockFixture, RequestsBeyondCapacityFailWithIoErr) {
  start(config());
  uint64_t sectors = 64 * 1024 / 512;
  for (uint64_t sector : {sectors, sectors - 1, uint64_t(UINT64_MAX), UINT64_MAX / 512}) {
    Buffer status = out(1);
    driver.add_chain({put(header(kBlockTypeIn, sector)), out(1024), status});
    kick();
    auto used = driver.next_used();
    ASSERT_TRUE(used);
    EXPECT_EQ(status_of(status), kBlockStatusIoErr) << sector;
    EXPECT_EQ(used->len, 1u);
  }
  EXPECT_GE(metric("block_rootfs", "invalid_reqs_count"), 4u);
}

TEST_P(BlockFixture, UnsupportedTypeGetsUnsupp) {
  start(config());
  Buffer status = out(1);
  driver.add_chain({put(header(11 /* DISCARD */, 0)), put(std::vector<uint8_t>(16)), status});
  kick();
  ASSERT_TRUE(driver.next_used());
  EXPECT_EQ(status_of(status), kBlockStatusUnsupported);
}

TEST_P(BlockFixture, PartialSectorDataFails) {
  start(config());
  Buffer status = out(1);
  driver.add_chain({put(header(kBlockTypeIn, 0)), out(500), status});
  kick();
  ASSERT_TRUE(driver.next_used());
  EXPECT_EQ(status_of(status), kBlockStatusIoErr);
}

TEST_P(BlockFixture, ShortHeaderFails) {
  start(config());
  Buffer status = out(1);
  driver.add_chain({put(std::vector<uint8_t>(8, 0)), status});
  kick();
  ASSERT_TRUE(driver.next_used());
  EXPECT_EQ(status_of(status), kBlockStatusIoErr);
}

TEST_P(BlockFixture, WrongDirectionBuffersFail) {
  start(config());
  // IN with device-readable data and OUT with device-writable data.
  Buffer s1 = out(1), s2 = out(1);
  driver.add_chain({put(header(kBlockTypeIn, 0)), put(std::vector<uint8_t>(512)), s1});
  driver.add_chain({put(header(kBlockTypeOut, 0)), out(512), s2});
  kick();
  EXPECT_EQ(status_of(s1), kBlockStatusIoErr);
  EXPECT_EQ(status_of(s2), kBlockStatusIoErr);
  EXPECT_EQ(disk.read(0, 1)[0], TempDisk::expected(0));
}

TEST_P(BlockFixture, RequestWithoutStatusByteIsCompletedEmpty) {
  start(config());
  uint16_t head = driver.add_chain({put(header(kBlockTypeIn, 0))});
  kick();
  auto used = driver.next_used();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->id, head);
  EXPECT_EQ(used->len, 0u);
  EXPECT_EQ(metric("block_rootfs", "invalid_reqs_count"), 1u);
}

TEST_P(BlockFixture, HostileChainsAreFailedAndTheDeviceKeepsServing) {
  start(config());
  GuestAddress hdr = testing::put_bytes(memory, allocator, header(kBlockTypeIn, 0));
  // A loop.
  driver.write_descriptor(200, hdr.raw(), 16, kDescFlagNext, 201);
  driver.write_descriptor(201, hdr.raw(), 16, kDescFlagNext, 200);
  driver.publish(200);
  // Data pointing outside guest RAM.
  driver.add_chain(
      {put(header(kBlockTypeIn, 0)), Buffer{GuestAddress(kMemSize - 256), 512, true}, out(1)});
  // An absurd length.
  driver.add_chain(
      {put(header(kBlockTypeIn, 0)), Buffer{GuestAddress(0x1000), 0xfffffe00u, true}, out(1)});
  // Then a good request.
  Buffer good = out(512), status = out(1);
  driver.add_chain({put(header(kBlockTypeIn, 2)), good, status});
  kick();
  int completed = 0;
  while (auto used = driver.next_used()) {
    ++completed;
    if (completed <= 3) {
      EXPECT_EQ(used->len, 0u);
    }
  }
  EXPECT_EQ(completed, 4);
  EXPECT_EQ(status_of(status), kBlockStatusOk);
  EXPECT_EQ(testing::get_bytes(memory, good.addr, 1)[0], TempDisk::expected(1024));
  EXPECT_FALSE(device->needs_reset());
  EXPECT_EQ(metric("block_rootfs", "invalid_reqs_count"), 3u);
}

TEST_P(BlockFixture, BrokenRingAsksForResetAndStopsServing) {
  start(config());
  driver.publish(300);  // head index beyond the 256-entry table
  kick();
  EXPECT_TRUE(device->needs_reset());
  EXPECT_EQ(interrupt.config_changes, 1);
  driver.add_chain({put(header(kBlockTypeIn, 0)), out(512), out(1)});
  kick();
  EXPECT_EQ(driver.used_idx(), 0) << "a broken device writes nothing";
  // A reset makes it usable again.
  {
    auto guard = device->lock();
    device->reset();
  }
  EXPECT_FALSE(device->needs_reset());
}

TEST_P(BlockFixture, ActivationRejectsBadQueueLayout) {
  device = std::make_unique<BlockDevice>(config(), logger, metrics);
  QueueState bad = driver.state();
  bad.used_ring = GuestAddress(kMemSize);
  auto guard = device->lock();
  EXPECT_THROW(device->activate(ActivationContext{memory, {bad}, kFeatures, interrupt, loop}),
               common::Error);
  EXPECT_FALSE(device->activated());
  EXPECT_EQ(metric("block_rootfs", "activate_fails"), 1u);
}

TEST_P(BlockFixture, OpeningMissingFileNamesDriveAndPath) {
  DriveConfig c = config();
  c.path_on_host = "/nonexistent/ember.img";
  try {
    BlockDevice d(c, logger, metrics);
    FAIL() << "expected an error";
  } catch (const common::Error& e) {
    EXPECT_STREQ(e.what(),
                 "open drive \"rootfs\" at /nonexistent/ember.img: No such file or directory");
  }
}

TEST_P(BlockFixture, UpdateSwapsBackingFileAndRaisesConfigInterrupt) {
  start(config());
  TempDisk bigger(128 * 1024, /*seed=*/99);
  update(DriveUpdate{"rootfs", bigger.path(), std::nullopt});
  EXPECT_EQ(interrupt.config_changes, 1);
  EXPECT_EQ(device->capacity_sectors(), 256u);
  uint64_t capacity = 0;
  device->read_config(0, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&capacity), 8));
  EXPECT_EQ(capacity, 256u);
  Buffer data = out(512), status = out(1);
  driver.add_chain({put(header(kBlockTypeIn, 200)), data, status});
  kick();
  EXPECT_EQ(status_of(status), kBlockStatusOk);
  EXPECT_EQ(testing::get_bytes(memory, data.addr, 1)[0], TempDisk::expected(200 * 512, 99));
  EXPECT_EQ(metric("block_rootfs", "update_count"), 1u);
  // The ID follows the new file.
  Buffer id = out(20);
  driver.add_chain({put(header(kBlockTypeGetId, 0)), id, out(1)});
  kick();
  struct stat st {};
  ASSERT_EQ(::stat(bigger.path().c_str(), &st), 0);
  std::string expected =
      std::to_string(st.st_dev) + std::to_string(st.st_rdev) + std::to_string(st.st_ino);
  expected.resize(20, '\0');
  auto got = testing::get_bytes(memory, id.addr, 20);
  EXPECT_EQ(std::string(got.begin(), got.end()), expected);
}

TEST_P(BlockFixture, FailedUpdateKeepsTheOldFile) {
  start(config());
  EXPECT_THROW(update(DriveUpdate{"rootfs", std::string("/nonexistent"), std::nullopt}),
               common::Error);
  EXPECT_EQ(device->capacity_sectors(), 128u);
  EXPECT_EQ(interrupt.config_changes, 0);
  EXPECT_EQ(metric("block_rootfs", "update_fails"), 1u);
}

TEST_P(BlockFixture, RateLimiterThrottlesAndTheTimerResumes) {
  DriveConfig c = config();
  // One op per 100 ms.
  c.rate_limiter = RateLimiterConfig{std::nullopt, TokenBucketConfig{1, std::nullopt, 100}};
  start(c);
  for (int i = 0; i < 3; ++i) driver.add_chain({put(header(kBlockTypeIn, 0)), out(512), out(1)});
  kick();
  int done = 0;
  while (driver.next_used()) ++done;
  EXPECT_EQ(done, 1);
  EXPECT_GE(metric("block_rootfs", "rate_limiter_throttled_events"), 1u);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (done < 3 && std::chrono::steady_clock::now() < deadline) {
    loop.run_once(100);
    while (driver.next_used()) ++done;
  }
  EXPECT_EQ(done, 3);
  EXPECT_GE(metric("block_rootfs", "rate_limiter_event_count"), 2u);
}

TEST_P(BlockFixture, BandwidthLimitCountsBytes) {
  DriveConfig c = config();
  c.rate_limiter = RateLimiterConfig{TokenBucketConfig{1024, std::nullopt, 1000}, std::nullopt};
  start(c);
  for (int i = 0; i < 3; ++i) driver.add_chain({put(header(kBlockTypeIn, 0)), out(512), out(1)});
  kick();
  int done = 0;
  while (driver.next_used()) ++done;
  EXPECT_EQ(done, 2) << "1024 bytes of budget = two 512-byte reads";
  // PATCH the limiter away: the next kick after the timer serves the rest.
  update(DriveUpdate{"rootfs", std::nullopt,
                     RateLimiterConfig{TokenBucketConfig{0, std::nullopt, 0}, std::nullopt}});
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (done < 3 && std::chrono::steady_clock::now() < deadline) {
    loop.run_once(100);
    while (driver.next_used()) ++done;
  }
  EXPECT_EQ(done, 3);
}

TEST_P(BlockFixture, ResetThenReactivateServesAgain) {
  start(config());
  {
    auto guard = device->lock();
    device->reset();
  }
  EXPECT_FALSE(device->activated());
  DriverQueue fresh(memory, allocator, 128);
  {
    auto guard = device->lock();
    device->activate(ActivationContext{memory, {fresh.state()}, kFeatures, interrupt, loop});
  }
  Buffer status = out(1);
  fresh.add_chain({put(header(kBlockTypeIn, 0)), out(512), status});
  kick();
  EXPECT_TRUE(fresh.next_used());
  EXPECT_EQ(status_of(status), kBlockStatusOk);
}

// A vhost-user ring stop (VM pause under QEMU): block has no state worth
// keeping beyond its drive, so it takes DeviceBase's default (reset, then
// activate on restart); the drive, its updates and the ring positions carry
// over.
TEST_P(BlockFixture, StoppedQueueIsLeftAloneAndRestartContinuesWithTheDrive) {
  start(config());
  driver.add_chain({put(header(kBlockTypeIn, 0)), out(512), out(1)});
  kick();
  ASSERT_TRUE(driver.next_used());
  std::vector<QueueState> stopped;
  {
    auto guard = device->lock();
    stopped = device->stop_queues();
  }
  ASSERT_EQ(stopped.size(), 1u);
  EXPECT_EQ(stopped[0].next_avail, 1);
  EXPECT_EQ(stopped[0].next_used, 1);
  EXPECT_FALSE(device->activated());
  EXPECT_EQ(device->queue_state(0).next_avail, 1) << "GET_VRING_BASE reads it while stopped";

  Buffer data = out(512), status = out(1);
  driver.add_chain({put(header(kBlockTypeIn, 200)), data, status});
  kick();
  EXPECT_EQ(driver.used_idx(), 1) << "a stopped queue is not processed";
  TempDisk bigger(128 * 1024, /*seed=*/5);
  update(DriveUpdate{"rootfs", bigger.path(), std::nullopt});
  EXPECT_EQ(interrupt.config_changes, 0) << "no interrupt while stopped (the transport tells)";

  {
    auto guard = device->lock();
    device->restart_queues(ActivationContext{memory, stopped, kFeatures, interrupt, loop});
  }
  EXPECT_TRUE(device->activated());
  kick();
  ASSERT_TRUE(driver.next_used());
  EXPECT_EQ(status_of(status), kBlockStatusOk);
  EXPECT_EQ(testing::get_bytes(memory, data.addr, 1)[0], TempDisk::expected(200 * 512, 5));
}

TEST_P(BlockFixture, BrokenDeviceStaysBrokenAcrossARingStopUntilTheDriverResets) {
  start(config());
  driver.publish(300);  // head index beyond the 256-entry table
  kick();
  ASSERT_TRUE(device->needs_reset());
  std::vector<QueueState> stopped;
  {
    auto guard = device->lock();
    stopped = device->stop_queues();
    device->restart_queues(ActivationContext{memory, stopped, kFeatures, interrupt, loop});
  }
  EXPECT_TRUE(device->needs_reset()) << "a pause does not repair a ring";
  // The driver resets the device and sets up new rings; QEMU restarts them
  // at index 0, which the device takes as a fresh start.
  DriverQueue fresh(memory, allocator, 128);
  {
    auto guard = device->lock();
    device->stop_queues();
    device->restart_queues(ActivationContext{memory, {fresh.state()}, kFeatures, interrupt, loop});
  }
  EXPECT_FALSE(device->needs_reset());
  Buffer status = out(1);
  fresh.add_chain({put(header(kBlockTypeIn, 0)), out(512), status});
  kick();
  EXPECT_TRUE(fresh.next_used());
  EXPECT_EQ(status_of(status), kBlockStatusOk);
}

TEST_P(BlockFixture, ConfigSpaceIsReadOnly) {
  start(config());
  uint64_t junk = 12345;
  device->write_config(0, std::span<const uint8_t>(reinterpret_cast<uint8_t*>(&junk), 8));
  uint64_t capacity = 0;
  device->read_config(0, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&capacity), 8));
  EXPECT_EQ(capacity, 128u);
  EXPECT_EQ(metric("block_rootfs", "cfg_fails"), 1u);
  uint8_t past[4] = {1, 1, 1, 1};
  device->read_config(100, past);
  EXPECT_EQ(past[0], 0) << "reads past the end return zeros";
}


// What only the Async engine has: requests in flight.
struct AsyncBlockFixture : BlockFixture {};

// What is in flight when the ring stops (a VM pause under QEMU) or the drive
// is swapped is completed first, so the ring positions and the backing file
// stay exact.
TEST_P(AsyncBlockFixture, RequestsInFlightFinishBeforeARingStopOrADriveSwap) {
  start(config());
  ASSERT_TRUE(device->async()) << "io_uring unavailable here";
  std::vector<Buffer> statuses;
  for (int i = 0; i < 8; ++i) {
    statuses.push_back(out(1));
    driver.add_chain({put(header(kBlockTypeIn, static_cast<uint64_t>(i))), out(512), statuses.back()});
  }
  kick_without_waiting();
  ASSERT_EQ(in_flight(), 8u) << "completions are reaped on the loop, which has not run";
  EXPECT_EQ(driver.used_idx(), 0);
  std::vector<QueueState> stopped;
  {
    auto guard = device->lock();
    stopped = device->stop_queues();
  }
  EXPECT_EQ(device->requests_in_flight(), 0u);
  EXPECT_EQ(stopped[0].next_avail, 8);
  EXPECT_EQ(stopped[0].next_used, 8) << "every popped chain is in the used ring before the stop";
  for (const Buffer& b : statuses) EXPECT_EQ(status_of(b), kBlockStatusOk);
  {
    auto guard = device->lock();
    device->restart_queues(ActivationContext{memory, stopped, kFeatures, interrupt, loop});
  }
  Buffer data = out(512), status = out(1);
  driver.add_chain({put(header(kBlockTypeIn, 1)), data, status});
  kick_without_waiting();
  ASSERT_EQ(in_flight(), 1u);
  TempDisk other(64 * 1024, /*seed=*/9);
  update(DriveUpdate{"rootfs", other.path(), std::nullopt});
  EXPECT_EQ(in_flight(), 0u);
  EXPECT_EQ(status_of(status), kBlockStatusOk);
  EXPECT_EQ(testing::get_bytes(memory, data.addr, 1)[0], TempDisk::expected(512, 0))
      << "the read issued before the swap read the old file";
}

// Many reads at once (Async: completed in whatever order the kernel
// finishes them), each with its own data.
TEST_P(BlockFixture, ManyReadsInFlightEachGetTheirOwnSectors) {
  start(config());
  std::vector<std::pair<Buffer, Buffer>> reads;
  for (uint64_t sector = 0; sector < 80; ++sector) {
    Buffer data = out(512), status = out(1);
    driver.add_chain({put(header(kBlockTypeIn, sector)), data, status});
    reads.emplace_back(data, status);
  }
  kick();
  int used = 0;
  while (driver.next_used()) ++used;
  EXPECT_EQ(used, 80);
  for (uint64_t sector = 0; sector < 80; ++sector) {
    EXPECT_EQ(status_of(reads[sector].second), kBlockStatusOk);
    EXPECT_EQ(testing::get_bytes(memory, reads[sector].first.addr + 3, 1)[0],
              TempDisk::expected(sector * 512 + 3))
        << "sector " << sector;
  }
  EXPECT_EQ(metric("block_rootfs", "read_count"), 80u);
}

// The backing file shrinks under a running drive: the read past its new end
// fails with IOERR on either engine (short transfer), and the next one works.
TEST_P(BlockFixture, FileThatShrankUnderTheDriveFailsTheReadWithIoErr) {
  start(config());
  ASSERT_EQ(::truncate(disk.path().c_str(), 4096), 0);
  Buffer lost = out(1), kept = out(1);
  driver.add_chain({put(header(kBlockTypeIn, 16)), out(512), lost});
  driver.add_chain({put(header(kBlockTypeIn, 1)), out(512), kept});
  kick();
  EXPECT_EQ(status_of(lost), kBlockStatusIoErr);
  EXPECT_EQ(status_of(kept), kBlockStatusOk);
  EXPECT_EQ(metric("block_rootfs", "execute_fails"), 1u);
}

INSTANTIATE_TEST_SUITE_P(Engines, BlockFixture, ::testing::Values(IoEngine::kSync, IoEngine::kAsync),
                         [](const ::testing::TestParamInfo<IoEngine>& info) {
                           return info.param == IoEngine::kAsync ? "Async" : "Sync";
                         });

INSTANTIATE_TEST_SUITE_P(Engines, AsyncBlockFixture, ::testing::Values(IoEngine::kAsync),
                         [](const ::testing::TestParamInfo<IoEngine>&) { return "Async"; });

}  // namespace
}  // namespace ember::vmm::virtio
