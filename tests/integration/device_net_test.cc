// virtio-net against a real tap: the test creates a persistent tap in a
// private network namespace, the device opens it like ember-vmm does, and a
// packet socket on the same interface plays the host network.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>

#include "tests/harness/require.h"
#include "vmm/devices/virtio/net/net_device.h"
#include "vmm/devices/virtio/testing/driver_queue.h"

namespace ember::vmm::virtio {
namespace {

using testing::Buffer;
using testing::DriverQueue;
using testing::GuestAllocator;
using testing::RecordingInterrupt;

constexpr uint64_t kMemSize = 16 << 20;
constexpr uint16_t kEtherType = 0x88b5;  // IEEE local experimental
constexpr const char* kTapName = "embtap0";
const std::array<uint8_t, 6> kGuestMac{0x02, 0, 0, 0, 0, 1};

uint64_t bit(unsigned b) { return uint64_t(1) << b; }

std::vector<uint8_t> ethernet_frame(const std::array<uint8_t, 6>& dst,
                                    const std::array<uint8_t, 6>& src, const std::string& payload,
                                    size_t min_size = 60) {
  std::vector<uint8_t> f(dst.begin(), dst.end());
  f.insert(f.end(), src.begin(), src.end());
  f.push_back(kEtherType >> 8);
  f.push_back(kEtherType & 0xff);
  f.insert(f.end(), payload.begin(), payload.end());
  if (f.size() < min_size) f.resize(min_size, 0);
  return f;
}

struct NetFixture : ::testing::Test {
  Logger logger;
  Metrics metrics;
  GuestMemory memory = GuestMemory::anonymous({{GuestAddress(0), kMemSize}});
  GuestAllocator allocator{GuestAddress(0x1000), kMemSize - 0x1000};
  DriverQueue rx{memory, allocator, 256};
  DriverQueue tx{memory, allocator, 256};
  RecordingInterrupt interrupt;
  common::EventLoop loop;
  std::unique_ptr<NetDevice> device;
  common::UniqueFd packet;
  int ifindex = 0;

  void SetUp() override {
    EMBER_REQUIRE(::geteuid() == 0 && ::access("/dev/net/tun", R_OK | W_OK) == 0,
                  "virtio-net tests need root and /dev/net/tun");
    EMBER_REQUIRE(::unshare(CLONE_NEWNET) == 0,
                  "virtio-net tests need a private network namespace (unshare)");
    {
      // A persistent tap, as the shim (or the operator) creates it before ember-vmm.
      common::UniqueFd tun(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
      ASSERT_TRUE(tun.valid());
      ifreq ifr{};
      std::strncpy(ifr.ifr_name, kTapName, IFNAMSIZ - 1);
      ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
      ASSERT_EQ(::ioctl(tun.get(), TUNSETIFF, &ifr), 0) << strerror(errno);
      ASSERT_EQ(::ioctl(tun.get(), TUNSETPERSIST, 1), 0);
    }
    std::ofstream(std::string("/proc/sys/net/ipv6/conf/") + kTapName + "/disable_ipv6") << "1";
    common::UniqueFd ctl(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, kTapName, IFNAMSIZ - 1);
    ifr.ifr_mtu = 9000;
    ASSERT_EQ(::ioctl(ctl.get(), SIOCSIFMTU, &ifr), 0) << strerror(errno);
    ifindex = static_cast<int>(::if_nametoindex(kTapName));
  }

  void start(NetworkInterfaceConfig config = {}, uint64_t extra_features = 0) {
    config.iface_id = "eth0";
    config.host_dev_name = kTapName;
    if (!config.guest_mac) config.guest_mac = "02:00:00:00:00:01";
    device = std::make_unique<NetDevice>(config, logger, metrics);
    uint64_t features =
        bit(kFeatureVersion1) | bit(kFeatureEventIdx) | bit(kNetFeatureMac) | extra_features;
    {
      auto guard = device->lock();
      device->activate(
          ActivationContext{memory, {rx.state(), tx.state()}, features, interrupt, loop});
    }
    // Bring the link up only now that the device holds the tap (carrier on):
    // the queueing discipline is then activated at once. Up without carrier,
    // activation waits for the kernel's link watcher, and frames sent
    // meanwhile are dropped silently.
    common::UniqueFd ctl(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, kTapName, IFNAMSIZ - 1);
    ASSERT_EQ(::ioctl(ctl.get(), SIOCGIFFLAGS, &ifr), 0);
    ifr.ifr_flags |= IFF_UP | IFF_NOARP;
    ASSERT_EQ(::ioctl(ctl.get(), SIOCSIFFLAGS, &ifr), 0) << strerror(errno);
    // The host network's end: a packet socket on the tap, bound once the link
    // is up (bound to a down link it reports ENETDOWN on the first send).
    packet.reset(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL)));
    ASSERT_TRUE(packet.valid());
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = ifindex;
    ASSERT_EQ(::bind(packet.get(), reinterpret_cast<sockaddr*>(&sll), sizeof sll), 0);
  }
  void kick(uint16_t q) {
    auto guard = device->lock();
    device->process_queue(q);
  }
  void send_from_guest(const std::vector<uint8_t>& frame) {
    std::vector<uint8_t> hdr(kVnetHeaderSize, 0);
    tx.add_chain({Buffer{testing::put_bytes(memory, allocator, hdr), kVnetHeaderSize, false},
                  Buffer{testing::put_bytes(memory, allocator, frame),
                         static_cast<uint32_t>(frame.size()), false}});
  }
  // The next frame of our EtherType the host network saw, or empty.
  std::vector<uint8_t> host_receive(int timeout_ms = 2000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      loop.run_once(0);
      pollfd p{packet.get(), POLLIN, 0};
      if (::poll(&p, 1, 20) != 1) continue;
      std::vector<uint8_t> buf(65536);
      ssize_t n = ::recv(packet.get(), buf.data(), buf.size(), 0);
      if (n >= 14 && buf[12] == (kEtherType >> 8) && buf[13] == (kEtherType & 0xff)) {
        buf.resize(static_cast<size_t>(n));
        return buf;
      }
    }
    return {};
  }
  void host_send(const std::vector<uint8_t>& frame) {
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_ifindex = ifindex;
    sll.sll_halen = 6;
    ASSERT_EQ(::sendto(packet.get(), frame.data(), frame.size(), 0,
                       reinterpret_cast<sockaddr*>(&sll), sizeof sll),
              static_cast<ssize_t>(frame.size()))
        << strerror(errno);
  }
  // Posts RX buffers and waits for a frame of our EtherType; returns
  // (header, frame, buffers used).
  struct Received {
    std::vector<uint8_t> header;
    std::vector<uint8_t> frame;
    int buffers = 0;
  };
  std::map<uint16_t, Buffer> rx_buffers;
  void post_rx(int count, uint32_t size) {
    for (int i = 0; i < count; ++i) {
      Buffer b{allocator.alloc(size), size, true};
      rx_buffers[rx.add_chain({b})] = b;
    }
    kick(NetDevice::kRxQueue);
  }
  std::optional<Received> guest_receive(int timeout_ms = 2000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    std::vector<uint8_t> bytes;
    int remaining = 0;
    Received r;
    while (std::chrono::steady_clock::now() < deadline) {
      loop.run_once(20);
      while (auto used = rx.next_used()) {
        Buffer b = rx_buffers.at(static_cast<uint16_t>(used->id));
        auto data = testing::get_bytes(memory, b.addr, used->len);
        if (remaining == 0) {
          if (data.size() < kVnetHeaderSize) continue;
          uint16_t num_buffers;
          std::memcpy(&num_buffers, data.data() + 10, 2);
          bytes.clear();
          remaining = num_buffers;
          r.buffers = num_buffers;
        }
        bytes.insert(bytes.end(), data.begin(), data.end());
        if (--remaining == 0 && bytes.size() >= kVnetHeaderSize + 14 &&
            bytes[kVnetHeaderSize + 12] == (kEtherType >> 8)) {
          r.header.assign(bytes.begin(), bytes.begin() + kVnetHeaderSize);
          r.frame.assign(bytes.begin() + kVnetHeaderSize, bytes.end());
          return r;
        }
      }
    }
    ADD_FAILURE() << "no frame for the guest; tap events " << metric("rx_tap_event_count")
                  << ", frames " << metric("rx_count") << ", no buffer "
                  << metric("no_rx_avail_buffer") << ", rx fails " << metric("rx_fails")
                  << ", used " << rx.used_idx();
    return std::nullopt;
  }
  void TearDown() override {
    device.reset();
    common::UniqueFd tun(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, kTapName, IFNAMSIZ - 1);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    if (tun && ::ioctl(tun.get(), TUNSETIFF, &ifr) == 0) ::ioctl(tun.get(), TUNSETPERSIST, 0);
  }
  uint64_t metric(const std::string& name) { return metrics.counter("net_eth0", name).load(); }
};

TEST_F(NetFixture, GuestFrameReachesTheHostNetwork) {
  start();
  auto frame = ethernet_frame({0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, kGuestMac, "ember-tx-test");
  send_from_guest(frame);
  kick(NetDevice::kTxQueue);
  EXPECT_EQ(tx.next_used().value_or(testing::UsedElement{999, 999}).len, 0u);
  auto got = host_receive();
  EXPECT_EQ(got, frame);
  EXPECT_EQ(metric("tx_packets_count"), 1u);
  EXPECT_EQ(metrics.counter("net", "tx_packets_count").load(), 1u) << "aggregate group";
  EXPECT_EQ(metric("tx_spoofed_mac_count"), 0u);
}

TEST_F(NetFixture, HostFrameReachesTheGuestWithoutMergeableBuffers) {
  start();
  post_rx(8, 4096);
  auto frame = ethernet_frame(kGuestMac, {0x02, 0, 0, 0, 0, 2}, "ember-rx-test");
  host_send(frame);
  auto got = guest_receive();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->frame, frame);
  EXPECT_EQ(got->buffers, 1);
  EXPECT_GE(interrupt.used[NetDevice::kRxQueue], 1);
}

TEST_F(NetFixture, LargeFrameSpansMergeableBuffers) {
  start({}, bit(kNetFeatureMrgRxbuf));
  post_rx(32, 1024);
  auto frame = ethernet_frame(kGuestMac, {0x02, 0, 0, 0, 0, 2}, std::string(3000, 'm'));
  host_send(frame);
  auto got = guest_receive();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->frame, frame);
  EXPECT_EQ(got->buffers, 3) << "12 + 3014 bytes in 1024-byte buffers";
}

TEST_F(NetFixture, FrameWaitsForRxBuffers) {
  start();
  auto frame = ethernet_frame(kGuestMac, {0x02, 0, 0, 0, 0, 2}, "patience");
  host_send(frame);
  for (int i = 0; i < 10; ++i) loop.run_once(10);
  EXPECT_EQ(rx.used_idx(), 0);
  post_rx(4, 4096);
  auto got = guest_receive();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->frame, frame);
}

TEST_F(NetFixture, TooSmallRxBufferDropsFrameWithoutMergeable) {
  start();
  post_rx(2, 100);
  host_send(ethernet_frame(kGuestMac, {0x02, 0, 0, 0, 0, 2}, std::string(500, 'x')));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (metric("rx_fails") == 0 && std::chrono::steady_clock::now() < deadline) loop.run_once(20);
  EXPECT_GE(metric("rx_fails"), 1u);
  // The buffers are still there for frames that fit.
  auto small = ethernet_frame(kGuestMac, {0x02, 0, 0, 0, 0, 2}, "tiny");
  host_send(small);
  auto got = guest_receive();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->frame, small);
}

TEST_F(NetFixture, MalformedTxChainsAreDropped) {
  start();
  // Shorter than the virtio-net header, longer than the largest frame, a loop.
  tx.add_chain({Buffer{allocator.alloc(8), 8, false}});
  tx.add_chain({Buffer{allocator.alloc(kNetMaxFrame + 1), kNetMaxFrame + 1, false}});
  GuestAddress b = allocator.alloc(64);
  tx.write_descriptor(200, b.raw(), 64, kDescFlagNext, 200);
  tx.publish(200);
  kick(NetDevice::kTxQueue);
  EXPECT_EQ(tx.used_idx(), 3);
  EXPECT_EQ(metric("tx_malformed_frames"), 2u);
  EXPECT_FALSE(device->needs_reset());
  // And a good frame still goes out.
  auto frame = ethernet_frame({0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, kGuestMac, "after");
  send_from_guest(frame);
  kick(NetDevice::kTxQueue);
  EXPECT_EQ(host_receive(), frame);
}

TEST_F(NetFixture, SpoofedSourceMacIsCounted) {
  start();
  send_from_guest(
      ethernet_frame({0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, {0x02, 9, 9, 9, 9, 9}, "spoof"));
  kick(NetDevice::kTxQueue);
  EXPECT_FALSE(host_receive().empty());
  EXPECT_EQ(metric("tx_spoofed_mac_count"), 1u);
}

TEST_F(NetFixture, TxRateLimiterDelaysFrames) {
  NetworkInterfaceConfig config;
  config.tx_rate_limiter = RateLimiterConfig{std::nullopt, TokenBucketConfig{1, std::nullopt, 100}};
  start(config);
  for (int i = 0; i < 3; ++i) {
    send_from_guest(
        ethernet_frame({0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, kGuestMac, "rl" + std::to_string(i)));
  }
  kick(NetDevice::kTxQueue);
  EXPECT_EQ(tx.used_idx(), 1);
  EXPECT_GE(metric("tx_rate_limiter_throttled"), 1u);
  int seen = 0;
  for (int i = 0; i < 3; ++i) seen += host_receive(3000).empty() ? 0 : 1;
  EXPECT_EQ(seen, 3);
  EXPECT_EQ(tx.used_idx(), 3);
}

TEST_F(NetFixture, ConfigSpaceCarriesMacAndMtu) {
  NetworkInterfaceConfig config;
  config.mtu = 1400;
  start(config);
  EXPECT_TRUE(device->available_features() & bit(kNetFeatureMtu));
  EXPECT_TRUE(device->available_features() & bit(kNetFeatureMac));
  uint8_t space[12];
  device->read_config(0, space);
  EXPECT_EQ(std::vector<uint8_t>(space, space + 6),
            std::vector<uint8_t>(kGuestMac.begin(), kGuestMac.end()));
  uint16_t mtu;
  std::memcpy(&mtu, space + 10, 2);
  EXPECT_EQ(mtu, 1400);
}

TEST_F(NetFixture, MissingTapNamesTheInterface) {
  NetworkInterfaceConfig config;
  config.iface_id = "eth1";
  config.host_dev_name = std::string(20, 'x');
  EXPECT_THROW(NetDevice(config, logger, metrics), common::Error);
  config.host_dev_name = "embtap0";
  config.guest_mac = "not-a-mac";
  try {
    NetDevice d(config, logger, metrics);
    FAIL();
  } catch (const common::Error& e) {
    EXPECT_NE(std::string(e.what()).find("invalid guest_mac"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ember::vmm::virtio
