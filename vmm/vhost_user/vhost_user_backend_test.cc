// VhostUserBackend against a fake frontend that speaks the protocol over a
// real unix socket, shares a memfd as guest RAM and drives real split
// virtqueues (testing/fake_frontend.h), with ember's real block, rng and
// vsock devices behind it.
#include "vmm/vhost_user/vhost_user_backend.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include "tests/harness/temp_dir.h"
#include "vmm/devices/virtio/block/block_device.h"
#include "vmm/devices/virtio/block/request.h"
#include "vmm/devices/virtio/queue.h"
#include "vmm/devices/virtio/rng/entropy_device.h"
#include "vmm/devices/virtio/vsock/vsock_device.h"
#include "vmm/vhost_user/testing/fake_frontend.h"

namespace ember::vmm::vhost_user {
namespace {

using namespace std::chrono_literals;
using testing::FakeFrontend;
using testing::FrontendRing;
using testing::SharedGuestMemory;
using virtio::testing::Buffer;
using virtio::testing::GuestAllocator;

constexpr uint64_t kMemSize = 16 << 20;
constexpr uint64_t kDiskSize = 1 << 20;
constexpr uint64_t kProtocolFeaturesBit = uint64_t(1) << kFeatureProtocolFeatures;

uint8_t pattern(uint64_t i, uint8_t seed) { return static_cast<uint8_t>(i * 7 + seed); }

void write_disk(const std::filesystem::path& path, uint64_t size, uint8_t seed) {
  std::vector<uint8_t> data(size);
  for (uint64_t i = 0; i < size; ++i) data[i] = pattern(i, seed);
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(data.data()), data.size());
}

std::vector<uint8_t> read_disk(const std::filesystem::path& path, uint64_t offset, size_t len) {
  std::vector<uint8_t> out(len);
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(offset));
  in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(len));
  return out;
}

std::vector<uint8_t> block_header(uint32_t type, uint64_t sector) {
  std::vector<uint8_t> h(virtio::kBlockHeaderSize, 0);
  std::memcpy(h.data(), &type, 4);
  std::memcpy(h.data() + 8, &sector, 8);
  return h;
}

struct BackendTest : ::testing::Test {
  ember::testing::TempDir dir{"ember-vhost-user-test"};
  std::filesystem::path disk = dir / "disk.img";
  std::string socket = (dir / "vu.sock").string();
  std::filesystem::path log_path = dir / "backend.log";
  Logger logger;
  Metrics metrics;
  SharedGuestMemory memory{GuestAddress(0), kMemSize};
  GuestAllocator allocator{GuestAddress(0x1000), kMemSize - 0x1000};
  std::unique_ptr<VhostUserBackend> backend;

  void SetUp() override {
    LoggerConfig config;
    config.log_path = log_path.string();
    config.level = LogLevel::kDebug;
    logger.configure(config);
    write_disk(disk, kDiskSize, 0);
  }
  void TearDown() override {
    if (backend) backend->stop();
  }

  std::string log() const {
    std::ifstream in(log_path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  void start_block(bool read_only = false) {
    DriveConfig drive;
    drive.drive_id = "rootfs";
    drive.path_on_host = disk.string();
    drive.is_read_only = read_only;
    backend = std::make_unique<VhostUserBackend>(
        socket, std::make_unique<virtio::BlockDevice>(drive, logger, metrics), logger, metrics);
    backend->start();
  }
  void start_rng() {
    backend = std::make_unique<VhostUserBackend>(
        socket, std::make_unique<virtio::EntropyDevice>(EntropyConfig{}, logger, metrics), logger,
        metrics);
    backend->start();
  }

  // A connected frontend whose one ring is running.
  struct Session {
    FakeFrontend frontend;
    std::unique_ptr<FrontendRing> ring;
    uint64_t features = 0;
  };
  Session open_session(uint16_t queue_size = 64) {
    Session s{FakeFrontend::connect(socket),
              std::make_unique<FrontendRing>(memory.memory(), allocator, queue_size)};
    s.features = s.frontend.handshake();
    s.frontend.start(s.features, memory, {s.ring.get()});
    return s;
  }

  // Posts a read of `sectors` sectors at `sector`; returns the data address.
  struct PostedRead {
    GuestAddress data;
    GuestAddress status;
  };
  PostedRead post_read(FrontendRing& ring, uint64_t sector, uint32_t sectors) {
    auto hdr = block_header(virtio::kBlockTypeIn, sector);
    GuestAddress h = virtio::testing::put_bytes(memory.memory(), allocator, hdr);
    PostedRead r{allocator.alloc(sectors * 512), allocator.alloc(1)};
    memory.memory().write_obj<uint8_t>(r.status, 0xff);
    ring.queue.add_chain(
        {{h, virtio::kBlockHeaderSize, false}, {r.data, sectors * 512, true}, {r.status, 1, true}});
    return r;
  }

  void expect_read_served(FrontendRing& ring, const PostedRead& r, uint64_t sector,
                          uint32_t sectors, uint8_t seed) {
    ring.notify();
    ASSERT_TRUE(ring.wait_call(5s)) << "no call after a block read\n" << log();
    auto used = ring.queue.next_used();
    ASSERT_TRUE(used);
    // As Linux does with VIRTIO_RING_F_EVENT_IDX (virtio 1.2 §2.7.10): ask
    // for an interrupt at the next used entry.
    ring.queue.set_used_event(ring.queue.used_idx());
    EXPECT_EQ(used->len, sectors * 512 + 1);
    EXPECT_EQ(memory.memory().read_obj<uint8_t>(r.status), virtio::kBlockStatusOk);
    auto data = virtio::testing::get_bytes(memory.memory(), r.data, sectors * 512);
    for (uint64_t i = 0; i < data.size(); ++i) {
      ASSERT_EQ(data[i], pattern(sector * 512 + i, seed)) << "byte " << i;
    }
  }
};

TEST_F(BackendTest, NegotiatesFeaturesProtocolFeaturesAndQueueCount) {
  start_block();
  FakeFrontend frontend = FakeFrontend::connect(socket);
  uint64_t features = frontend.get_features();
  EXPECT_TRUE(features & kProtocolFeaturesBit);
  EXPECT_TRUE(features & (uint64_t(1) << virtio::kFeatureVersion1));
  EXPECT_TRUE(features & (uint64_t(1) << virtio::kBlockFeatureSegMax));
  EXPECT_FALSE(features & (uint64_t(1) << virtio::kBlockFeatureRo));
  uint64_t protocol = frontend.get_protocol_features();
  for (unsigned bit : {kProtocolMq, kProtocolReplyAck, kProtocolBackendReq, kProtocolConfig}) {
    EXPECT_TRUE(protocol & (uint64_t(1) << bit)) << "protocol feature " << bit;
  }
  EXPECT_FALSE(protocol & (uint64_t(1) << kProtocolInflightShmfd));
  frontend.set_protocol_features(protocol);
  EXPECT_EQ(frontend.get_queue_num(), 1u);
  frontend.set_owner();
  EXPECT_EQ(backend->connection_count(), 1u);
  frontend.set_features(features);
  EXPECT_TRUE(backend->connected());
}

TEST_F(BackendTest, ReadOnlyDriveOffersRoFeature) {
  start_block(true);
  FakeFrontend frontend = FakeFrontend::connect(socket);
  EXPECT_TRUE(frontend.get_features() & (uint64_t(1) << virtio::kBlockFeatureRo));
}

TEST_F(BackendTest, VsockBackendHandsTheFrontendTwoRings) {
  VsockConfig config{7, (dir / "vsock.sock").string()};
  backend = std::make_unique<VhostUserBackend>(
      socket, std::make_unique<virtio::VsockDevice>(config, logger, metrics), logger, metrics);
  backend->start();
  FakeFrontend frontend = FakeFrontend::connect(socket);
  frontend.handshake();
  // QEMU's vhost-user-vsock-device keeps the event queue.
  EXPECT_EQ(frontend.get_queue_num(), 2u);
  auto config_space = frontend.get_config(0, 8);
  uint64_t cid;
  std::memcpy(&cid, config_space.data(), 8);
  EXPECT_EQ(cid, 7u);
}

TEST_F(BackendTest, GetConfigReportsBlockCapacity) {
  start_block();
  FakeFrontend frontend = FakeFrontend::connect(socket);
  frontend.handshake();
  // QEMU 7.2 reads the whole struct virtio_blk_config (60 bytes).
  auto config = frontend.get_config(0, 60);
  uint64_t capacity;
  uint32_t seg_max;
  std::memcpy(&capacity, config.data(), 8);
  std::memcpy(&seg_max, config.data() + 12, 4);
  EXPECT_EQ(capacity, kDiskSize / 512);
  EXPECT_EQ(seg_max, virtio::kBlockSegMax);
  // A partial read at an offset.
  auto part = frontend.get_config(8, 8);
  EXPECT_EQ(std::vector<uint8_t>(config.begin() + 8, config.begin() + 16), part);
}

TEST_F(BackendTest, BlockReadGoesThroughTheRings) {
  start_block();
  Session s = open_session();
  EXPECT_TRUE(backend->device_active());
  auto r = post_read(*s.ring, 3, 4);
  expect_read_served(*s.ring, r, 3, 4, 0);
}

TEST_F(BackendTest, ServesTheThousandEntryRingsQemuGivesTheGuest) {
  // QEMU's virtio-mmio offers every queue 1024 entries, more than ember-vmm
  // advertises for the same device.
  start_block();
  Session s = open_session(1024);
  auto r = post_read(*s.ring, 5, 8);
  expect_read_served(*s.ring, r, 5, 8, 0);
}

TEST_F(BackendTest, BlockWriteReachesTheBackingFile) {
  start_block();
  Session s = open_session();
  std::vector<uint8_t> data(1024);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(0xa0 ^ i);
  auto hdr = block_header(virtio::kBlockTypeOut, 10);
  GuestAddress h = virtio::testing::put_bytes(memory.memory(), allocator, hdr);
  GuestAddress d = virtio::testing::put_bytes(memory.memory(), allocator, data);
  GuestAddress status = allocator.alloc(1);
  s.ring->queue.add_chain({{h, 16, false}, {d, 1024, false}, {status, 1, true}});
  s.ring->notify();
  ASSERT_TRUE(s.ring->wait_call(5s)) << log();
  auto used = s.ring->queue.next_used();
  ASSERT_TRUE(used);
  EXPECT_EQ(memory.memory().read_obj<uint8_t>(status), virtio::kBlockStatusOk);
  EXPECT_EQ(read_disk(disk, 10 * 512, 1024), data);
}

TEST_F(BackendTest, BuffersPostedBeforeTheRingsStartAreServed) {
  start_block();
  FakeFrontend frontend = FakeFrontend::connect(socket);
  FrontendRing ring(memory.memory(), allocator, 64);
  // The guest driver may post requests before the backend runs the ring;
  // the kick that announced them went nowhere.
  auto r = post_read(ring, 0, 1);
  uint64_t features = frontend.handshake();
  frontend.start(features, memory, {&ring});
  ASSERT_TRUE(ring.wait_call(5s)) << log();
  auto used = ring.queue.next_used();
  ASSERT_TRUE(used);
  EXPECT_EQ(memory.memory().read_obj<uint8_t>(r.status), virtio::kBlockStatusOk);
}

TEST_F(BackendTest, RngOffersNoConfigProtocolFeature) {
  start_rng();
  FakeFrontend frontend = FakeFrontend::connect(socket);
  EXPECT_FALSE(frontend.get_protocol_features() & (uint64_t(1) << kProtocolConfig));
}

TEST_F(BackendTest, RngFillsGuestBuffers) {
  start_rng();
  Session s = open_session(4);
  GuestAddress buf = allocator.alloc(64);
  s.ring->queue.add_chain({{buf, 64, true}});
  s.ring->notify();
  ASSERT_TRUE(s.ring->wait_call(5s)) << log();
  auto used = s.ring->queue.next_used();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->len, 64u);
  auto bytes = virtio::testing::get_bytes(memory.memory(), buf, 64);
  EXPECT_NE(bytes, std::vector<uint8_t>(64, 0)) << "64 random bytes were all zero";
}

TEST_F(BackendTest, RingsWaitForEnableWhenProtocolFeaturesAreNegotiated) {
  start_block();
  FakeFrontend frontend = FakeFrontend::connect(socket);
  FrontendRing ring(memory.memory(), allocator, 64);
  uint64_t features = frontend.handshake();
  frontend.set_features(features);
  MemoryRegionDesc region = memory.region();
  int fds[] = {memory.fd()};
  frontend.set_mem_table(std::span<const MemoryRegionDesc>(&region, 1), fds);
  frontend.set_vring_num(0, 64);
  frontend.set_vring_base(0, 0);
  frontend.set_vring_addr(0, memory.user_address(ring.queue.desc_table()),
                          memory.user_address(ring.queue.avail_ring()),
                          memory.user_address(ring.queue.used_ring()));
  frontend.set_vring_kick(0, ring.kick.fd());
  frontend.set_vring_call(0, ring.call.fd());
  auto r = post_read(ring, 1, 1);
  ring.notify();
  // vhost-user.rst "Ring states": started but not enabled.
  EXPECT_FALSE(ring.wait_call(200ms));
  EXPECT_FALSE(backend->device_active());
  frontend.set_vring_enable(0, true);
  expect_read_served(ring, r, 1, 1, 0);
}

TEST_F(BackendTest, GetVringBaseStopsTheRingAndStartResumesFromTheBase) {
  start_block();
  Session s = open_session();
  for (int i = 0; i < 3; ++i) {
    auto r = post_read(*s.ring, i, 1);
    expect_read_served(*s.ring, r, i, 1, 0);
  }
  auto bases = s.frontend.stop(1);
  ASSERT_EQ(bases.size(), 1u);
  EXPECT_EQ(bases[0], 3u);
  EXPECT_FALSE(backend->device_active());

  // A stopped ring is not processed.
  auto r = post_read(*s.ring, 7, 1);
  s.ring->notify();
  EXPECT_FALSE(s.ring->wait_call(200ms));
  EXPECT_EQ(s.ring->queue.used_idx(), 3);

  // Restarted at the returned base, the backend serves what is pending.
  s.frontend.start(s.features, memory, {s.ring.get()}, {static_cast<uint16_t>(bases[0])});
  ASSERT_TRUE(s.ring->wait_call(5s)) << log();
  ASSERT_TRUE(s.ring->queue.next_used());
  EXPECT_EQ(memory.memory().read_obj<uint8_t>(r.status), virtio::kBlockStatusOk);
  EXPECT_EQ(s.ring->queue.used_idx(), 4);
}

TEST_F(BackendTest, NewMemoryTableWhileRunningKeepsTheRingPositions) {
  start_block();
  Session s = open_session();
  for (int i = 0; i < 2; ++i) {
    auto r = post_read(*s.ring, i, 1);
    expect_read_served(*s.ring, r, i, 1, 0);
  }
  // QEMU resends the table when guest memory changes (hotplug); the rings
  // keep running from where they were.
  MemoryRegionDesc region = memory.region();
  int fds[] = {memory.fd()};
  s.frontend.set_mem_table(std::span<const MemoryRegionDesc>(&region, 1), fds);
  EXPECT_TRUE(backend->device_active());
  auto r = post_read(*s.ring, 6, 1);
  expect_read_served(*s.ring, r, 6, 1, 0);
  EXPECT_EQ(s.ring->queue.used_idx(), 3);
}

TEST_F(BackendTest, ResetDeviceStopsEverythingUntilTheRingsAreSetUpAgain) {
  start_block();
  Session s = open_session();
  auto r = post_read(*s.ring, 0, 1);
  expect_read_served(*s.ring, r, 0, 1, 0);
  s.frontend.send(Request::kResetDevice);
  s.frontend.expect_ack(Request::kResetDevice);
  EXPECT_FALSE(backend->device_active());
  r = post_read(*s.ring, 1, 1);
  s.ring->notify();
  EXPECT_FALSE(s.ring->wait_call(200ms));
  // A fresh driver after the reset: new rings from index 0.
  FrontendRing fresh(memory.memory(), allocator, 64);
  s.frontend.start(s.features, memory, {&fresh});
  r = post_read(fresh, 2, 1);
  expect_read_served(fresh, r, 2, 1, 0);
}

TEST_F(BackendTest, UpdateBlockSwapsBackingFileAndSendsConfigChange) {
  start_block();
  Session s = open_session();
  std::filesystem::path bigger = dir / "bigger.img";
  write_disk(bigger, 4 * kDiskSize, 42);
  backend->update_block(DriveUpdate{"rootfs", bigger.string(), std::nullopt});

  auto request = s.frontend.read_backend_request(5s);
  ASSERT_TRUE(request) << "no backend request after update_block\n" << log();
  EXPECT_EQ(request->request, static_cast<uint32_t>(BackendRequest::kConfigChangeMsg));
  EXPECT_EQ(request->flags & kFlagNeedReply, 0u);
  auto config = s.frontend.get_config(0, 8);
  uint64_t capacity;
  std::memcpy(&capacity, config.data(), 8);
  EXPECT_EQ(capacity, 4 * kDiskSize / 512);
  // Sectors past the old end now read from the new file.
  uint64_t sector = kDiskSize / 512 + 5;
  auto r = post_read(*s.ring, sector, 2);
  expect_read_served(*s.ring, r, sector, 2, 42);
}

TEST_F(BackendTest, UpdateBlockBeforeTheDeviceRunsStillNotifiesTheFrontend) {
  start_block();
  FakeFrontend frontend = FakeFrontend::connect(socket);
  frontend.handshake();
  std::filesystem::path bigger = dir / "bigger.img";
  write_disk(bigger, 2 * kDiskSize, 1);
  backend->update_block(DriveUpdate{"rootfs", bigger.string(), std::nullopt});
  auto request = frontend.read_backend_request(5s);
  ASSERT_TRUE(request) << log();
  EXPECT_EQ(request->request, static_cast<uint32_t>(BackendRequest::kConfigChangeMsg));
}

TEST_F(BackendTest, FailedUpdateLeavesTheDriveUnchanged) {
  start_block();
  FakeFrontend frontend = FakeFrontend::connect(socket);
  frontend.handshake();
  try {
    backend->update_block(DriveUpdate{"rootfs", (dir / "missing.img").string(), std::nullopt});
    FAIL() << "update to a missing file succeeded";
  } catch (const common::Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.img"), std::string::npos) << e.what();
  }
  auto config = frontend.get_config(0, 8);
  uint64_t capacity;
  std::memcpy(&capacity, config.data(), 8);
  EXPECT_EQ(capacity, kDiskSize / 512);
}

TEST_F(BackendTest, UpdateBlockOnAnRngBackendIsRefused) {
  start_rng();
  EXPECT_THROW(backend->update_block(DriveUpdate{"rootfs", disk.string(), std::nullopt}),
               common::Error);
}

TEST_F(BackendTest, UpdateBlockAfterStopThrows) {
  start_block();
  backend->stop();
  EXPECT_THROW(backend->update_block(DriveUpdate{"rootfs", disk.string(), std::nullopt}),
               common::Error);
}

TEST_F(BackendTest, FrontendCanReconnectAfterDisconnecting) {
  start_block();
  {
    Session s = open_session();
    auto r = post_read(*s.ring, 0, 1);
    expect_read_served(*s.ring, r, 0, 1, 0);
  }  // the frontend goes away with its rings running
  for (int i = 0; i < 500 && backend->connected(); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_FALSE(backend->connected());
  EXPECT_FALSE(backend->device_active());

  // A new session (QEMU restarted): fresh rings in fresh memory positions.
  Session s = open_session();
  auto r = post_read(*s.ring, 9, 2);
  expect_read_served(*s.ring, r, 9, 2, 0);
  EXPECT_EQ(backend->connection_count(), 2u);
}

TEST_F(BackendTest, SecondFrontendIsRefusedWhileOneIsConnected) {
  start_block();
  Session s = open_session();
  FakeFrontend second = FakeFrontend::connect(socket);
  EXPECT_TRUE(second.wait_closed());
  auto r = post_read(*s.ring, 4, 1);
  expect_read_served(*s.ring, r, 4, 1, 0);
  EXPECT_NE(log().find("refused a second frontend"), std::string::npos);
}

TEST_F(BackendTest, ServesAnAlreadyConnectedSocket) {
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  DriveConfig drive;
  drive.drive_id = "rootfs";
  drive.path_on_host = disk.string();
  backend = std::make_unique<VhostUserBackend>(
      "", std::make_unique<virtio::BlockDevice>(drive, logger, metrics), logger, metrics);
  backend->start(common::UniqueFd(pair[1]));
  FakeFrontend frontend{common::UniqueFd(pair[0])};
  FrontendRing ring(memory.memory(), allocator, 64);
  frontend.start(frontend.handshake(), memory, {&ring});
  auto r = post_read(ring, 2, 1);
  expect_read_served(ring, r, 2, 1, 0);
}

TEST_F(BackendTest, StopResetsTheRunningDevice) {
  start_block();
  Session s = open_session();
  backend->stop();
  EXPECT_FALSE(backend->connected());
  EXPECT_TRUE(s.frontend.wait_closed());
  EXPECT_FALSE(std::filesystem::exists(socket));
}

TEST_F(BackendTest, StaleSocketFileIsReplacedButOtherFilesAreNot) {
  std::ofstream(socket) << "data";
  DriveConfig drive;
  drive.drive_id = "rootfs";
  drive.path_on_host = disk.string();
  VhostUserBackend refused(socket, std::make_unique<virtio::BlockDevice>(drive, logger, metrics),
                           logger, metrics);
  EXPECT_THROW(refused.start(), common::Error);
  std::filesystem::remove(socket);
  {
    VhostUserBackend first(socket, std::make_unique<virtio::BlockDevice>(drive, logger, metrics),
                           logger, metrics);
    first.start();
  }
  // Leave a socket file behind, as a killed process would.
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, socket.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ::close(fd);
  start_block();
  FakeFrontend frontend = FakeFrontend::connect(socket);
  EXPECT_NE(frontend.get_features(), 0u);
  // A live socket (this backend's) is not taken over by a second one.
  VhostUserBackend second(socket, std::make_unique<virtio::BlockDevice>(drive, logger, metrics),
                          logger, metrics);
  EXPECT_THROW(second.start(), common::Error);
  EXPECT_TRUE(backend->connected());
}

// ---- vsock across a ring stop ------------------------------------------------

// The guest end of vsock over the two rings QEMU's vhost-user-vsock-device
// hands the backend (rx = vring 0, tx = vring 1; virtio 1.2 §5.10.2): it
// keeps RX buffers posted, accepts one host-initiated stream on kPort, and
// moves bytes both ways under credit (§5.10.6.3), consuming what it receives
// at once.
class RingVsockGuest {
 public:
  static constexpr uint64_t kCid = 3;
  static constexpr uint32_t kPort = 52;
  static constexpr uint32_t kBufAlloc = 256 * 1024;
  static constexpr uint32_t kRxPayload = 4096;

  RingVsockGuest(const GuestMemory& memory, GuestAllocator& allocator, FrontendRing& rx,
                 FrontendRing& tx)
      : memory_(memory), allocator_(allocator), rx_(rx), tx_(tx) {}

  void post_rx_buffers(size_t count) {
    for (size_t i = 0; i < count; ++i) {
      GuestAddress addr = allocator_.alloc(sizeof(virtio::VsockHeader) + kRxPayload, 8);
      post(addr);
    }
  }

  // Takes every used RX buffer (and reposts it), answers the host's REQUEST
  // and CREDIT_REQUESTs, credits consumed bytes back, reclaims TX buffers.
  // Returns the packets received.
  size_t drain() {
    size_t packets = 0;
    while (auto used = rx_.queue.next_used()) {
      GuestAddress addr = rx_heads_.at(static_cast<uint16_t>(used->id));
      rx_heads_.erase(static_cast<uint16_t>(used->id));
      ++packets;
      auto h = memory_.read_obj<virtio::VsockHeader>(addr);
      if (h.op == virtio::kVsockOpRw) {
        auto payload = virtio::testing::get_bytes(memory_, addr + sizeof h, h.len);
        received.append(payload.begin(), payload.end());
        fwd_cnt_ += h.len;
      } else {
        control.push_back(h);
      }
      handle(h);
      post(addr);
    }
    if (!rx_heads_.empty()) rx_.notify();
    while (tx_.queue.next_used()) {
    }
    // As Linux does: tell the host about freed space before it runs out.
    if (connected && fwd_cnt_ - fwd_cnt_sent_ >= kBufAlloc / 4) send(virtio::kVsockOpCreditUpdate);
    return packets;
  }

  // Drains until `done()`, waiting on the RX call eventfd in between.
  bool pump_until(const std::function<bool()>& done, std::chrono::milliseconds timeout = 10s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      drain();
      if (done()) return true;
      if (std::chrono::steady_clock::now() > deadline) return false;
      rx_.wait_call(10ms);
    }
  }

  void send(uint16_t op, const std::string& payload = {}) {
    virtio::VsockHeader h;
    h.src_cid = kCid;
    h.dst_cid = virtio::kVsockHostCid;
    h.src_port = kPort;
    h.dst_port = host_port;
    h.type = virtio::kVsockTypeStream;
    h.op = op;
    h.len = static_cast<uint32_t>(payload.size());
    h.buf_alloc = kBufAlloc;
    h.fwd_cnt = fwd_cnt_;
    fwd_cnt_sent_ = fwd_cnt_;
    GuestAddress at = allocator_.alloc(sizeof h + payload.size() + 1, 8);
    memory_.write_obj(at, h);
    std::vector<Buffer> chain{{at, static_cast<uint32_t>(sizeof h), false}};
    if (!payload.empty()) {
      memory_.write(at + sizeof h,
                    std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(payload.data()),
                                             payload.size()));
      chain.push_back({at + sizeof h, static_cast<uint32_t>(payload.size()), false});
    }
    tx_.queue.add_chain(chain);
    tx_.notify();
  }

  bool connected = false;
  bool reset = false;
  uint32_t host_port = 0;
  std::string received;
  std::vector<virtio::VsockHeader> control;  // every packet but RW

 private:
  void post(GuestAddress addr) {
    uint16_t head = rx_.queue.add_chain(
        {{addr, static_cast<uint32_t>(sizeof(virtio::VsockHeader) + kRxPayload), true}});
    rx_heads_[head] = addr;
  }
  void handle(const virtio::VsockHeader& h) {
    if (h.op == virtio::kVsockOpRequest && h.dst_port == kPort && !connected) {
      host_port = h.src_port;
      connected = true;
      send(virtio::kVsockOpResponse);
    } else if (h.op == virtio::kVsockOpCreditRequest) {
      send(virtio::kVsockOpCreditUpdate);
    } else if (h.op == virtio::kVsockOpRst) {
      reset = true;
      connected = false;
    }
  }

  const GuestMemory& memory_;
  GuestAllocator& allocator_;
  FrontendRing& rx_;
  FrontendRing& tx_;
  std::map<uint16_t, GuestAddress> rx_heads_;
  uint32_t fwd_cnt_ = 0;
  uint32_t fwd_cnt_sent_ = 0;
};

struct VsockBackendTest : BackendTest {
  std::string uds = (dir / "vsock.sock").string();
  FrontendRing rx{memory.memory(), allocator, 256};
  FrontendRing tx{memory.memory(), allocator, 256};
  RingVsockGuest guest{memory.memory(), allocator, rx, tx};
  std::optional<FakeFrontend> frontend;
  uint64_t features = 0;
  common::UniqueFd client;  // the host end of the stream

  void SetUp() override {
    BackendTest::SetUp();
    backend = std::make_unique<VhostUserBackend>(
        socket,
        std::make_unique<virtio::VsockDevice>(VsockConfig{RingVsockGuest::kCid, uds}, logger,
                                              metrics),
        logger, metrics);
    backend->start();
    frontend.emplace(FakeFrontend::connect(socket));
    // Without EVENT_IDX every used buffer is signalled: the test guest
    // never has to re-arm used_event.
    features = frontend->handshake() & ~(uint64_t(1) << virtio::kFeatureEventIdx);
    guest.post_rx_buffers(128);
    frontend->start(features, memory, {&rx, &tx});
  }

  // The host side opens the stream: Firecracker's hybrid "CONNECT <port>"
  // (reference/firecracker-compat.md §3), answered "OK <local port>".
  void connect_host() {
    client.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, uds.c_str(), sizeof addr.sun_path - 1);
    ASSERT_EQ(::connect(client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    std::string line = "CONNECT " + std::to_string(RingVsockGuest::kPort) + "\n";
    ASSERT_EQ(::write(client.get(), line.data(), line.size()), static_cast<ssize_t>(line.size()));
    ASSERT_TRUE(guest.pump_until([&] { return guest.connected; })) << log();
    std::string answer = host_read(3 + 10 + 1);
    EXPECT_EQ(answer, "OK " + std::to_string(guest.host_port) + "\n");
  }
  // Reads from the host end until `len` bytes (or EOF, or 5 s without data).
  std::string host_read(size_t len) {
    std::string got;
    char buf[4096];
    while (got.size() < len) {
      pollfd p{client.get(), POLLIN, 0};
      if (::poll(&p, 1, 5000) != 1) break;
      ssize_t n = ::read(client.get(), buf, std::min(sizeof buf, len - got.size()));
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    return got;
  }
  bool host_sees_eof(std::chrono::milliseconds timeout = 5s) {
    char buf[256];
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{client.get(), POLLIN, 0};
      if (::poll(&p, 1, 50) != 1) continue;
      ssize_t n = ::read(client.get(), buf, sizeof buf);
      if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
    }
    return false;
  }
};

TEST_F(VsockBackendTest, StreamSurvivesARingStopAndRestartWithEveryByteInOrder) {
  connect_host();
  std::vector<uint8_t> data(1 << 20);
  for (size_t i = 0; i < data.size(); ++i) data[i] = pattern(i, static_cast<uint8_t>(i >> 12));
  size_t sent = 0;
  size_t limit = 256 * 1024;  // the first part goes out before the stop
  // The host writes up to `limit` as fast as the stream takes it (never
  // blocking).
  auto feed = [&] {
    while (sent < limit) {
      ssize_t n = ::send(client.get(), data.data() + sent, std::min<size_t>(limit - sent, 65536),
                         MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n <= 0) return;
      sent += static_cast<size_t>(n);
    }
  };
  ASSERT_TRUE(guest.pump_until([&] {
    feed();
    return guest.received.size() >= 128 * 1024;
  })) << log();

  // QEMU's `stop`: every ring disabled, then GET_VRING_BASE.
  auto bases = frontend->stop(2);
  ASSERT_EQ(bases.size(), 2u);
  EXPECT_FALSE(backend->device_active());
  // Nothing was in flight: the bases are where the used rings stand.
  EXPECT_EQ(bases[0], rx.queue.used_idx());
  EXPECT_EQ(bases[1], tx.queue.used_idx());
  guest.drain();
  uint16_t rx_used = rx.queue.used_idx();
  uint16_t tx_used = tx.queue.used_idx();
  size_t received_at_stop = guest.received.size();

  // While stopped the host keeps writing (its socket fills up, nothing is
  // dropped) and the guest queues a packet of its own; the backend touches
  // neither ring.
  size_t sent_at_stop = sent;
  limit = data.size();
  guest.send(virtio::kVsockOpRw, "written by the guest while stopped");
  for (int i = 0; i < 30; ++i) {
    feed();
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_GT(sent, sent_at_stop) << "the host could not write while the rings were stopped";
  EXPECT_EQ(guest.drain(), 0u);
  EXPECT_EQ(rx.queue.used_idx(), rx_used) << "the backend wrote into a stopped RX ring";
  EXPECT_EQ(tx.queue.used_idx(), tx_used) << "the backend consumed a stopped TX ring";
  EXPECT_EQ(guest.received.size(), received_at_stop);
  pollfd readable{client.get(), POLLIN, 0};
  EXPECT_EQ(::poll(&readable, 1, 0), 0) << "the guest's packet left a stopped TX ring";

  // QEMU's `cont`: the whole start sequence again, with a new memory table
  // (a fresh mapping of the same memfd) and the bases it got back.
  frontend->start(features, memory, {&rx, &tx},
                  {static_cast<uint16_t>(bases[0]), static_cast<uint16_t>(bases[1])});
  EXPECT_TRUE(backend->device_active());
  ASSERT_TRUE(guest.pump_until([&] {
    feed();
    return guest.received.size() >= data.size();
  })) << "received "
      << guest.received.size() << " of " << data.size() << "\n"
      << log();
  ASSERT_EQ(guest.received.size(), data.size());
  EXPECT_TRUE(std::memcmp(guest.received.data(), data.data(), data.size()) == 0)
      << "the stream arrived altered";
  EXPECT_EQ(host_read(34), "written by the guest while stopped");

  // And it goes on both ways.
  guest.send(virtio::kVsockOpRw, "pong");
  EXPECT_EQ(host_read(4), "pong");
  ASSERT_EQ(::write(client.get(), "ping", 4), 4);
  ASSERT_TRUE(guest.pump_until([&] { return guest.received.size() == data.size() + 4; }));
  EXPECT_EQ(guest.received.substr(data.size()), "ping");
  EXPECT_FALSE(guest.reset);
  EXPECT_EQ(metrics.counter("vsock", "conns_removed").load(), 0u);
  std::string text = log();
  EXPECT_NE(text.find("device rings stopped, device state kept"), std::string::npos) << text;
  EXPECT_EQ(text.find("device reset"), std::string::npos) << text;
}

TEST_F(VsockBackendTest, ResetOwnerEndsTheStreams) {
  connect_host();
  frontend->send(Request::kResetOwner);
  frontend->expect_ack(Request::kResetOwner);
  EXPECT_FALSE(backend->device_active());
  EXPECT_TRUE(host_sees_eof()) << log();
}

TEST_F(VsockBackendTest, FrontendGoingAwayEndsTheStreams) {
  connect_host();
  // Stopped first, as QEMU does on `quit` of a running VM: the disconnect
  // still resets the device.
  frontend->stop(2);
  frontend.reset();
  EXPECT_TRUE(host_sees_eof()) << log();
}

TEST_F(VsockBackendTest, RestartOnFreshRingsAfterADriverResetEndsTheStreams) {
  connect_host();
  frontend->stop(2);
  // The guest reset the device meanwhile (QEMU restarts such rings at 0)
  // and laid out new rings.
  FrontendRing rx2(memory.memory(), allocator, 256), tx2(memory.memory(), allocator, 256);
  frontend->start(features, memory, {&rx2, &tx2});
  EXPECT_TRUE(host_sees_eof()) << log();
  EXPECT_NE(log().find("the driver reset the device"), std::string::npos) << log();
}

// ---- hostile frontends -------------------------------------------------------

struct HostileTest : BackendTest {
  void SetUp() override {
    BackendTest::SetUp();
    start_block();
  }
  // After the hostile message: the backend dropped the connection, logged
  // `expected`, and serves the next frontend normally.
  void expect_dropped(FakeFrontend& frontend, const std::string& expected) {
    EXPECT_TRUE(frontend.wait_closed()) << "backend kept a hostile frontend connected\n" << log();
    for (int i = 0; i < 500 && backend->connected(); ++i) std::this_thread::sleep_for(10ms);
    std::string text = log();
    EXPECT_NE(text.find("dropping the frontend connection"), std::string::npos) << text;
    EXPECT_NE(text.find(expected), std::string::npos) << "log lacks \"" << expected << "\":\n"
                                                      << text;
    Session s = open_session();
    auto r = post_read(*s.ring, 1, 1);
    expect_read_served(*s.ring, r, 1, 1, 0);
  }
  FakeFrontend ready_frontend() {
    FakeFrontend f = FakeFrontend::connect(socket);
    f.handshake();
    return f;
  }
};

TEST_F(HostileTest, OversizedPayloadIsRefusedUnread) {
  FakeFrontend f = FakeFrontend::connect(socket);
  Header h{static_cast<uint32_t>(Request::kSetMemTable), kVersion, 1u << 20};
  f.send_bytes(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&h), sizeof h));
  expect_dropped(f, "exceeds the limit");
}

TEST_F(HostileTest, WrongProtocolVersion) {
  FakeFrontend f = FakeFrontend::connect(socket);
  f.send(Request::kGetFeatures, {}, {}, 0x2);
  expect_dropped(f, "unsupported protocol version");
}

TEST_F(HostileTest, PayloadOfTheWrongSize) {
  FakeFrontend f = ready_frontend();
  uint32_t half = 64;
  f.send_obj(Request::kSetVringNum, half);
  expect_dropped(f, "payload is 4 bytes, expected 8");
}

TEST_F(HostileTest, FdWhereNoneBelongs) {
  FakeFrontend f = FakeFrontend::connect(socket);
  common::EventFd stray;
  int fds[] = {stray.fd()};
  f.send(Request::kGetFeatures, {}, fds, kVersion);
  expect_dropped(f, "came with 1 file descriptors, expected 0");
}

TEST_F(HostileTest, MoreFdsThanAnyMessageMayCarry) {
  FakeFrontend f = ready_frontend();
  std::vector<common::EventFd> eventfds(10);
  std::vector<int> fds;
  for (auto& e : eventfds) fds.push_back(e.fd());
  Header h{static_cast<uint32_t>(Request::kSetOwner), kVersion, 0};
  f.send_bytes(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&h), sizeof h), fds);
  expect_dropped(f, "file descriptors with one message");
}

TEST_F(HostileTest, MemoryTableWithoutItsFds) {
  FakeFrontend f = ready_frontend();
  MemoryRegionDesc region = memory.region();
  std::vector<uint8_t> payload(8 + sizeof region);
  uint32_t one = 1;
  std::memcpy(payload.data(), &one, 4);
  std::memcpy(payload.data() + 8, &region, sizeof region);
  f.send(Request::kSetMemTable, payload);
  expect_dropped(f, "one per region is required");
}

TEST_F(HostileTest, MemoryTableWithOverlappingRegions) {
  FakeFrontend f = ready_frontend();
  MemoryRegionDesc a = memory.region();
  a.size = kMemSize / 2;
  MemoryRegionDesc b = a;
  b.guest_address = kMemSize / 4;
  b.user_address = a.user_address + kMemSize / 2;
  b.mmap_offset = kMemSize / 2;
  MemoryRegionDesc regions[] = {a, b};
  int fds[] = {memory.fd(), memory.fd()};
  f.send(
      Request::kSetMemTable,
      [&] {
        std::vector<uint8_t> p(8 + sizeof regions);
        uint32_t n = 2;
        std::memcpy(p.data(), &n, 4);
        std::memcpy(p.data() + 8, regions, sizeof regions);
        return p;
      }(),
      fds);
  expect_dropped(f, "guest range overlaps");
}

TEST_F(HostileTest, MemoryRegionLargerThanItsFile) {
  FakeFrontend f = ready_frontend();
  MemoryRegionDesc region = memory.region();
  region.size = kMemSize * 4;  // would SIGBUS past the memfd's end
  int fds[] = {memory.fd()};
  std::vector<uint8_t> p(8 + sizeof region);
  uint32_t n = 1;
  std::memcpy(p.data(), &n, 4);
  std::memcpy(p.data() + 8, &region, sizeof region);
  f.send(Request::kSetMemTable, p, fds);
  expect_dropped(f, "bytes long");
}

TEST_F(HostileTest, MemoryRegionBackedByAnEventfd) {
  FakeFrontend f = ready_frontend();
  common::EventFd not_memory;
  MemoryRegionDesc region = memory.region();
  int fds[] = {not_memory.fd()};
  std::vector<uint8_t> p(8 + sizeof region);
  uint32_t n = 1;
  std::memcpy(p.data(), &n, 4);
  std::memcpy(p.data() + 8, &region, sizeof region);
  f.send(Request::kSetMemTable, p, fds);
  expect_dropped(f, "not a regular file");
}

TEST_F(HostileTest, TooManyMemoryRegions) {
  FakeFrontend f = ready_frontend();
  std::vector<uint8_t> p(8 + 9 * sizeof(MemoryRegionDesc));
  uint32_t n = 9;
  std::memcpy(p.data(), &n, 4);
  f.send(Request::kSetMemTable, p);
  expect_dropped(f, "at most 8");
}

TEST_F(HostileTest, VringAddressOutsideTheMemoryTable) {
  FakeFrontend f = ready_frontend();
  f.set_features(f.get_features());
  MemoryRegionDesc region = memory.region();
  int fds[] = {memory.fd()};
  f.set_mem_table(std::span<const MemoryRegionDesc>(&region, 1), fds);
  f.set_vring_num(0, 64);
  uint64_t outside = region.user_address + kMemSize + 0x1000;
  f.send_obj(Request::kSetVringAddr,
             VringAddr{0, 0, outside, region.user_address, region.user_address, 0});
  expect_dropped(f, "outside the memory table");
}

TEST_F(HostileTest, VringEndingPastTheMemoryTable) {
  FakeFrontend f = ready_frontend();
  f.set_features(f.get_features());
  MemoryRegionDesc region = memory.region();
  int fds[] = {memory.fd()};
  f.set_mem_table(std::span<const MemoryRegionDesc>(&region, 1), fds);
  f.set_vring_num(0, 256);
  // The table starts inside guest RAM but its 4 KiB run past the end.
  uint64_t desc = region.user_address + kMemSize - 16;
  f.send_obj(Request::kSetVringAddr,
             VringAddr{0, 0, desc, region.user_address, region.user_address + 64, 0});
  expect_dropped(f, "descriptor table");
}

TEST_F(HostileTest, HugeQueueSize) {
  FakeFrontend f = ready_frontend();
  f.send_obj(Request::kSetVringNum, VringState{0, 65536});
  expect_dropped(f, "size 65536 is not a power of two <= 32768");
}

TEST_F(HostileTest, QueueSizeThatIsNotAPowerOfTwo) {
  FakeFrontend f = ready_frontend();
  f.send_obj(Request::kSetVringNum, VringState{0, 100});
  expect_dropped(f, "size 100 is not a power of two");
}

TEST_F(HostileTest, VringIndexOutOfRange) {
  FakeFrontend f = ready_frontend();
  f.send_obj(Request::kSetVringEnable, VringState{5, 1});
  expect_dropped(f, "vring index 5 out of range");
}

TEST_F(HostileTest, VringBaseBeyondSixteenBits) {
  FakeFrontend f = ready_frontend();
  f.send_obj(Request::kSetVringBase, VringState{0, 70000});
  expect_dropped(f, "16-bit");
}

TEST_F(HostileTest, UnknownRequest) {
  FakeFrontend f = ready_frontend();
  Header h{99, kVersion, 0};
  f.send_bytes(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&h), sizeof h));
  expect_dropped(f, "request 99 is not supported");
}

TEST_F(HostileTest, UnofferedRequestLikeInflightFd) {
  FakeFrontend f = ready_frontend();
  f.send(Request::kGetInflightFd, std::vector<uint8_t>(24, 0));
  expect_dropped(f, "GET_INFLIGHT_FD is not supported");
}

TEST_F(HostileTest, ConfigReadLargerThanAnyConfigSpace) {
  FakeFrontend f = ready_frontend();
  std::vector<uint8_t> p(12 + 1000, 0);
  ConfigHeader h{0, 1000, 0};
  std::memcpy(p.data(), &h, sizeof h);
  f.send(Request::kGetConfig, p, {}, kVersion);
  expect_dropped(f, "exceeds the 256-byte config space");
}

TEST_F(HostileTest, FeaturesTheBackendNeverOffered) {
  FakeFrontend f = ready_frontend();
  f.send_obj(Request::kSetFeatures, uint64_t(1) << 60);
  expect_dropped(f, "did not offer");
}

TEST_F(HostileTest, KickFdThatIsARegularFile) {
  FakeFrontend f = ready_frontend();
  common::UniqueFd file(::open(disk.c_str(), O_RDONLY | O_CLOEXEC));
  int fds[] = {file.get()};
  f.send_obj(Request::kSetVringKick, uint64_t(0), fds);
  expect_dropped(f, "cannot watch the kick fd");
}

TEST_F(HostileTest, KickFdThatReachesEndOfFile) {
  FakeFrontend f = ready_frontend();
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
  common::UniqueFd read_end(p[0]);
  common::UniqueFd write_end(p[1]);
  int fds[] = {read_end.get()};
  f.send_obj(Request::kSetVringKick, uint64_t(0), fds);
  f.expect_ack(Request::kSetVringKick);
  write_end.reset();  // EOF: would spin the loop if the backend kept watching it
  expect_dropped(f, "reached end of file");
}

TEST_F(HostileTest, HangUpInTheMiddleOfAMessage) {
  {
    FakeFrontend f = ready_frontend();
    Header h{static_cast<uint32_t>(Request::kSetFeatures), kVersion, 8};
    f.send_bytes(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&h), sizeof h));
  }
  for (int i = 0; i < 500 && backend->connected(); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_FALSE(backend->connected());
  EXPECT_NE(log().find("hung up"), std::string::npos) << log();
  Session s = open_session();
  auto r = post_read(*s.ring, 1, 1);
  expect_read_served(*s.ring, r, 1, 1, 0);
}

TEST_F(HostileTest, MisalignedUsedRingFailsActivation) {
  FakeFrontend f = ready_frontend();
  FrontendRing ring(memory.memory(), allocator, 64);
  f.set_features(f.get_features());
  MemoryRegionDesc region = memory.region();
  int fds[] = {memory.fd()};
  f.set_mem_table(std::span<const MemoryRegionDesc>(&region, 1), fds);
  f.set_vring_num(0, 64);
  f.set_vring_addr(0, memory.user_address(ring.queue.desc_table()),
                   memory.user_address(ring.queue.avail_ring()),
                   memory.user_address(ring.queue.used_ring()) + 2);
  f.set_vring_kick(0, ring.kick.fd());
  f.send_obj(Request::kSetVringEnable, VringState{0, 1});
  expect_dropped(f, "not 4-byte aligned");
}

TEST_F(HostileTest, PartialMessageDoesNotStallOtherWork) {
  // One frontend trickles a header; the backend must not block on it (the
  // loop also serves kicks and the listening socket).
  FakeFrontend f = ready_frontend();
  Header h{static_cast<uint32_t>(Request::kGetFeatures), kVersion, 0};
  auto bytes = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&h), sizeof h);
  f.send_bytes(bytes.subspan(0, 5));
  std::this_thread::sleep_for(50ms);
  f.send_bytes(bytes.subspan(5));
  EXPECT_NE(f.receive_reply(Request::kGetFeatures).payload_as<uint64_t>(), 0u);
}

}  // namespace
}  // namespace ember::vmm::vhost_user
