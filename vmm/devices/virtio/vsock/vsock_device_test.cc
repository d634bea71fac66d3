#include "vmm/devices/virtio/vsock/vsock_device.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <random>

#include "vmm/devices/virtio/vsock/testing/vsock_guest.h"

namespace ember::vmm::virtio {
namespace {

using testing::GuestAllocator;
using testing::VsockGuest;
using testing::VsockPacket;

constexpr uint64_t kMemSize = 64 << 20;
constexpr uint64_t kFeatures = (uint64_t(1) << kFeatureVersion1) |
                               (uint64_t(1) << kFeatureEventIdx) |
                               (uint64_t(1) << kFeatureIndirectDesc);

std::string temp_socket_path() {
  static int counter = 0;
  return "/tmp/ember-vsock-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) +
         ".sock";
}

common::UniqueFd connect_unix(const std::string& path) {
  common::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) return {};
  return fd;
}

common::UniqueFd listen_unix(const std::string& path) {
  common::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  ::unlink(path.c_str());
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) return {};
  ::listen(fd.get(), 16);
  return fd;
}

void write_all(int fd, const std::string& s) {
  ASSERT_EQ(::write(fd, s.data(), s.size()), static_cast<ssize_t>(s.size()));
}

// Non-blocking read of what is there now ("" if nothing, "<EOF>" at end).
std::string read_now(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 0) != 1) return "";
  char buf[65536];
  ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
  if (n == 0) return "<EOF>";
  if (n < 0) return "";
  return std::string(buf, static_cast<size_t>(n));
}

struct VsockFixture : ::testing::Test {
  std::string uds = temp_socket_path();
  Logger logger;
  Metrics metrics;
  GuestMemory memory = GuestMemory::anonymous({{GuestAddress(0), kMemSize}});
  GuestAllocator allocator{GuestAddress(0x1000), kMemSize - 0x1000};
  common::EventLoop loop;
  std::unique_ptr<VsockDevice> device;
  std::unique_ptr<VsockGuest> guest;

  void SetUp() override {
    device = std::make_unique<VsockDevice>(VsockConfig{3, uds}, logger, metrics);
    guest = std::make_unique<VsockGuest>(memory, allocator, *device, loop);
    guest->activate(kFeatures);
  }
  void TearDown() override {
    guest.reset();
    device.reset();
    ::unlink(uds.c_str());
  }

  // Host client connects with CONNECT <port>; the guest (listening) accepts.
  // Returns the client socket and the guest connection.
  std::pair<common::UniqueFd, VsockGuest::Conn*> host_connect(uint32_t port,
                                                              const std::string& extra = "") {
    guest->listen(port);
    size_t before = guest->accepted().size();
    common::UniqueFd client = connect_unix(uds);
    EXPECT_TRUE(client.valid());
    write_all(client.get(), "CONNECT " + std::to_string(port) + "\n" + extra);
    EXPECT_TRUE(guest->pump_until([&] { return guest->accepted().size() > before; }));
    if (guest->accepted().size() <= before) return {std::move(client), nullptr};
    VsockGuest::Conn* conn = guest->accepted().back();
    std::string reply;
    EXPECT_TRUE(guest->pump_until([&] {
      reply += read_now(client.get());
      return reply.find('\n') != std::string::npos;
    }));
    EXPECT_EQ(reply.substr(0, 3), "OK ");
    return {std::move(client), conn};
  }

  std::string client_read_until(int fd, size_t bytes, int timeout_ms = 5000) {
    std::string got;
    guest->pump_until(
        [&] {
          std::string s = read_now(fd);
          if (s == "<EOF>") return true;
          got += s;
          return got.size() >= bytes;
        },
        timeout_ms);
    return got;
  }

  bool client_sees_eof(int fd, int timeout_ms = 5000) {
    return guest->pump_until([&] { return read_now(fd) == "<EOF>"; }, timeout_ms);
  }

  const VsockPacket* last_op(uint16_t op) {
    for (auto it = guest->log().rbegin(); it != guest->log().rend(); ++it) {
      if (it->header.op == op) return &*it;
    }
    return nullptr;
  }
};

TEST_F(VsockFixture, ConfigSpaceHoldsGuestCid) {
  uint64_t cid = 0;
  device->read_config(0, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&cid), 8));
  EXPECT_EQ(cid, 3u);
}

TEST_F(VsockFixture, BindFailsWhenSocketPathExists) {
  EXPECT_THROW(VsockDevice(VsockConfig{3, uds}, logger, metrics), common::Error);
}

TEST_F(VsockFixture, HostConnectIsAnsweredWithOkAndFirstLocalPort) {
  guest->listen(52);
  common::UniqueFd client = connect_unix(uds);
  ASSERT_TRUE(client.valid());
  write_all(client.get(), "CONNECT 52\n");
  ASSERT_TRUE(guest->pump_until([&] { return last_op(kVsockOpRequest) != nullptr; }));
  const VsockPacket* req = last_op(kVsockOpRequest);
  EXPECT_EQ(req->header.src_cid, 2u);
  EXPECT_EQ(req->header.dst_cid, 3u);
  EXPECT_EQ(req->header.src_port, 1u << 30);
  EXPECT_EQ(req->header.dst_port, 52u);
  EXPECT_EQ(req->header.type, kVsockTypeStream);
  EXPECT_EQ(req->header.buf_alloc, kVsockConnBufAlloc);
  EXPECT_EQ(client_read_until(client.get(), 14), "OK 1073741824\n");
  EXPECT_EQ(device->connection_count(), 1u);
  EXPECT_EQ(metrics.counter("vsock", "conns_added").load(), 1u);
}

TEST_F(VsockFixture, DataFlowsBothWaysAfterHandshake) {
  auto [client, conn] = host_connect(52);
  ASSERT_TRUE(conn);
  write_all(client.get(), "hello guest");
  ASSERT_TRUE(guest->pump_until([&] { return conn->received.size() == 11; }));
  auto got = guest->read(*conn);
  EXPECT_EQ(std::string(got.begin(), got.end()), "hello guest");
  std::string msg = "hello host";
  guest->write(*conn, reinterpret_cast<const uint8_t*>(msg.data()), msg.size());
  EXPECT_EQ(client_read_until(client.get(), msg.size()), msg);
}

TEST_F(VsockFixture, ConnectWordIsCaseInsensitiveAndEarlyBytesAreKept) {
  auto [client, conn] = host_connect(7, "early bytes");
  ASSERT_TRUE(conn);
  ASSERT_TRUE(guest->pump_until([&] { return conn->received.size() == 11; }));
  auto got = guest->read(*conn);
  EXPECT_EQ(std::string(got.begin(), got.end()), "early bytes");
  // Lower case too.
  guest->listen(8);
  common::UniqueFd c2 = connect_unix(uds);
  write_all(c2.get(), "connect 8\n");
  EXPECT_EQ(client_read_until(c2.get(), 14), "OK 1073741825\n") << "round-robin local ports";
}

TEST_F(VsockFixture, BadHandshakeClosesTheClient) {
  for (std::string line :
       std::vector<std::string>{"HELLO 52\n", "CONNECT\n", "CONNECT 99999999999\n", "CONNECT 5x\n",
                                std::string(40, 'a')}) {
    common::UniqueFd client = connect_unix(uds);
    write_all(client.get(), line);
    EXPECT_TRUE(client_sees_eof(client.get())) << line;
  }
  EXPECT_EQ(device->connection_count(), 0u);
}

TEST_F(VsockFixture, GuestRstOnRequestClosesTheClient) {
  common::UniqueFd client = connect_unix(uds);
  write_all(client.get(), "CONNECT 99\n");  // nobody listens on 99: the test guest answers RST
  EXPECT_TRUE(client_sees_eof(client.get()));
  EXPECT_TRUE(guest->pump_until([&] { return device->connection_count() == 0; }));
}

TEST_F(VsockFixture, GuestInitiatedConnectionReachesUdsPortListener) {
  common::UniqueFd listener = listen_unix(uds + "_52");
  ASSERT_TRUE(listener.valid());
  VsockGuest::Conn& conn = guest->connect(1234, 52);
  ASSERT_TRUE(guest->pump_until([&] { return conn.established; }));
  common::UniqueFd server(::accept(listener.get(), nullptr, nullptr));
  ASSERT_TRUE(server.valid());
  std::string msg = "from guest";
  guest->write(conn, reinterpret_cast<const uint8_t*>(msg.data()), msg.size());
  EXPECT_EQ(client_read_until(server.get(), msg.size()), msg);
  write_all(server.get(), "from host");
  ASSERT_TRUE(guest->pump_until([&] { return conn.received.size() == 9; }));
  ::unlink((uds + "_52").c_str());
}

TEST_F(VsockFixture, GuestConnectionToMissingListenerGetsRst) {
  VsockGuest::Conn& conn = guest->connect(1234, 4444);
  ASSERT_TRUE(guest->pump_until([&] { return conn.reset; }));
  EXPECT_FALSE(conn.established);
  EXPECT_EQ(device->connection_count(), 0u);
}

TEST_F(VsockFixture, HostHalfCloseSendsShutdownSendAndGuestCanStillWrite) {
  auto [client, conn] = host_connect(52);
  ASSERT_TRUE(conn);
  write_all(client.get(), "last words");
  ::shutdown(client.get(), SHUT_WR);
  ASSERT_TRUE(guest->pump_until([&] { return conn->peer_shutdown != 0; }));
  EXPECT_EQ(conn->peer_shutdown, kVsockShutdownSend) << "half close, not a full one";
  EXPECT_EQ(conn->received.size(), 10u) << "data arrives before the SHUTDOWN";
  std::string reply = "still here";
  guest->write(*conn, reinterpret_cast<const uint8_t*>(reply.data()), reply.size());
  EXPECT_EQ(client_read_until(client.get(), reply.size()), reply);
  // The guest closes too: RST back, host socket closed.
  guest->shutdown(*conn, kVsockShutdownRcv | kVsockShutdownSend);
  EXPECT_TRUE(client_sees_eof(client.get()));
  EXPECT_TRUE(guest->pump_until([&] { return conn->reset; }));
  EXPECT_TRUE(guest->pump_until([&] { return device->connection_count() == 0; }));
}

TEST_F(VsockFixture, GuestHalfCloseGivesHostEofAndHostCanStillWrite) {
  auto [client, conn] = host_connect(52);
  ASSERT_TRUE(conn);
  std::string msg = "bye";
  guest->write(*conn, reinterpret_cast<const uint8_t*>(msg.data()), msg.size());
  guest->shutdown(*conn, kVsockShutdownSend);
  std::string got = client_read_until(client.get(), 100, 2000);
  EXPECT_EQ(got, "bye");
  EXPECT_TRUE(client_sees_eof(client.get())) << "the host reader sees EOF after the data";
  write_all(client.get(), "answer");
  ASSERT_TRUE(guest->pump_until([&] { return conn->received.size() == 6; }));
}

TEST_F(VsockFixture, HostCloseSendsFullShutdownThenGuestRstRemovesConnection) {
  auto [client, conn] = host_connect(52);
  ASSERT_TRUE(conn);
  write_all(client.get(), "tail");
  client.reset();
  ASSERT_TRUE(guest->pump_until(
      [&] { return conn->peer_shutdown == (kVsockShutdownRcv | kVsockShutdownSend); }));
  EXPECT_EQ(conn->received.size(), 4u) << "pending data is drained before the SHUTDOWN";
  guest->rst(*conn);
  EXPECT_TRUE(guest->pump_until([&] { return device->connection_count() == 0; }));
}

TEST_F(VsockFixture, ClosedConnectionIsResetIfGuestNeverAnswers) {
  auto [client, conn] = host_connect(52);
  ASSERT_TRUE(conn);
  client.reset();
  ASSERT_TRUE(guest->pump_until([&] { return conn->peer_shutdown != 0; }));
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(guest->pump_until([&] { return conn->reset; }, 5000));
  auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_GE(waited, std::chrono::milliseconds(1500));
  EXPECT_EQ(device->connection_count(), 0u);
}

TEST_F(VsockFixture, UnansweredHostRequestTimesOut) {
  // The guest never looks at its RX ring, so the REQUEST is neither
  // answered nor refused: only the device loop runs.
  common::UniqueFd client = connect_unix(uds);
  write_all(client.get(), "CONNECT 52\n");
  auto start = std::chrono::steady_clock::now();
  bool eof = false;
  while (!eof && std::chrono::steady_clock::now() - start < std::chrono::seconds(5)) {
    loop.run_once(50);
    eof = read_now(client.get()) == "<EOF>";
  }
  EXPECT_TRUE(eof);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1500));
}

TEST_F(VsockFixture, HostToGuestRespectsGuestCredit) {
  guest.reset();
  device.reset();
  ::unlink(uds.c_str());
  device = std::make_unique<VsockDevice>(VsockConfig{3, uds}, logger, metrics);
  // A guest with an 8 KiB receive buffer that does not read yet.
  guest = std::make_unique<VsockGuest>(memory, allocator, *device, loop, 3, 128, 4096, 8192);
  guest->activate(kFeatures);
  auto [client, conn] = host_connect(52);
  ASSERT_TRUE(conn);
  std::string big(100 * 1024, 'x');
  ASSERT_EQ(::write(client.get(), big.data(), big.size()), static_cast<ssize_t>(big.size()));
  guest->pump_until([&] { return false; }, 300);
  EXPECT_EQ(conn->received.size(), 8192u) << "no more than the advertised buf_alloc";
  EXPECT_TRUE(last_op(kVsockOpCreditRequest)) << "stalled sender asks for credit";
  // Reading returns credit and the rest flows.
  size_t total = 0;
  ASSERT_TRUE(guest->pump_until([&] {
    total += guest->read(*conn).size();
    return total == big.size();
  }));
}

TEST_F(VsockFixture, CreditRequestIsAnswered) {
  auto [client, conn] = host_connect(52);
  ASSERT_TRUE(conn);
  size_t before = guest->log().size();
  VsockHeader h;
  h.src_port = conn->guest_port;
  h.dst_port = conn->host_port;
  h.type = kVsockTypeStream;
  h.op = kVsockOpCreditRequest;
  h.buf_alloc = 256 * 1024;
  guest->send_raw(h);
  ASSERT_TRUE(guest->pump_until([&] {
    for (size_t i = before; i < guest->log().size(); ++i) {
      if (guest->log()[i].header.op == kVsockOpCreditUpdate) return true;
    }
    return false;
  }));
}

TEST_F(VsockFixture, ProactiveCreditUpdateWhenGuestViewRunsLow) {
  auto [client, conn] = host_connect(52);
  ASSERT_TRUE(conn);
  std::vector<uint8_t> data(62 * 1024, 'y');
  EXPECT_EQ(guest->write(*conn, data.data(), data.size()), data.size());
  ASSERT_TRUE(guest->pump_until([&] {
    const VsockPacket* p = last_op(kVsockOpCreditUpdate);
    return p && p->header.fwd_cnt == data.size();
  }));
  EXPECT_EQ(client_read_until(client.get(), data.size()).size(), data.size());
}

TEST_F(VsockFixture, GuestExceedingCreditIsReset) {
  auto [client, conn] = host_connect(52);
  ASSERT_TRUE(conn);
  // The host client never reads; a hostile guest ignores credit.
  std::vector<uint8_t> chunk(kVsockMaxPayload, 'z');
  VsockHeader h;
  h.src_port = conn->guest_port;
  h.dst_port = conn->host_port;
  h.type = kVsockTypeStream;
  h.op = kVsockOpRw;
  h.len = kVsockMaxPayload;
  h.buf_alloc = 256 * 1024;
  for (int i = 0; i < 200 && !conn->reset; ++i) {
    guest->send_raw(h, chunk);
    guest->pump(0);
  }
  EXPECT_TRUE(guest->pump_until([&] { return conn->reset; }));
  EXPECT_GE(metrics.counter("vsock", "conns_killed").load(), 1u);
}

TEST_F(VsockFixture, PacketsForUnknownConnectionsGetRst) {
  VsockHeader h;
  h.src_port = 777;
  h.dst_port = 888;
  h.type = kVsockTypeStream;
  h.op = kVsockOpRw;
  h.len = 3;
  guest->send_raw(h, {1, 2, 3});
  ASSERT_TRUE(guest->pump_until([&] { return last_op(kVsockOpRst) != nullptr; }));
  EXPECT_EQ(last_op(kVsockOpRst)->header.src_port, 888u);
  EXPECT_EQ(last_op(kVsockOpRst)->header.dst_port, 777u);
  // A RST for an unknown connection is not answered; a wrong CID is dropped.
  size_t before = guest->log().size();
  h.op = kVsockOpRst;
  h.len = 0;
  guest->send_raw(h);
  h.op = kVsockOpRequest;
  h.dst_cid = 5;
  guest->send_raw(h);
  guest->pump_until([] { return false; }, 100);
  EXPECT_EQ(guest->log().size(), before);
}

TEST_F(VsockFixture, MalformedTxPacketsAreDroppedAndDeviceKeepsWorking) {
  auto& tx = guest->tx_queue();
  // Header cut short.
  GuestAddress small = allocator.alloc(20);
  tx.add_chain({testing::Buffer{small, 20, false}});
  // len beyond 64 KiB.
  VsockHeader h;
  h.src_cid = 3;
  h.dst_cid = 2;
  h.op = kVsockOpRw;
  h.type = kVsockTypeStream;
  h.len = 70000;
  GuestAddress hdr = testing::put_bytes(
      memory, allocator, std::span<const uint8_t>(reinterpret_cast<uint8_t*>(&h), sizeof h));
  tx.add_chain({testing::Buffer{hdr, sizeof h, false},
                testing::Buffer{allocator.alloc(70000), 70000, false}});
  // len beyond the payload present.
  h.len = 100;
  GuestAddress hdr2 = testing::put_bytes(
      memory, allocator, std::span<const uint8_t>(reinterpret_cast<uint8_t*>(&h), sizeof h));
  tx.add_chain(
      {testing::Buffer{hdr2, sizeof h, false}, testing::Buffer{allocator.alloc(10), 10, false}});
  // Writable TX buffer (wrong direction) and a loop.
  tx.add_chain({testing::Buffer{allocator.alloc(64), 64, true}});
  tx.write_descriptor(250, hdr.raw(), sizeof h, kDescFlagNext, 250);
  tx.publish(250);
  guest->kick_tx();
  EXPECT_FALSE(device->needs_reset());
  EXPECT_EQ(tx.used_idx(), 5);
  // Still works.
  auto [client, conn] = host_connect(52);
  EXPECT_TRUE(conn);
}

TEST_F(VsockFixture, RxBufferTooSmallForAHeaderIsReturnedEmpty) {
  // A guest that posts one RX buffer too small for a header.
  guest.reset();
  device.reset();
  ::unlink(uds.c_str());
  device = std::make_unique<VsockDevice>(VsockConfig{3, uds}, logger, metrics);
  guest = std::make_unique<VsockGuest>(memory, allocator, *device, loop, 3, /*rx_buffers=*/0);
  guest->activate(kFeatures);
  auto& rx = guest->rx_queue();
  uint16_t tiny = rx.add_chain({testing::Buffer{allocator.alloc(16), 16, true}});
  VsockHeader h;  // for no connection: the device answers with a RST
  h.src_port = 1;
  h.dst_port = 2;
  h.type = kVsockTypeStream;
  h.op = kVsockOpRw;
  guest->send_raw(h);
  guest->kick_tx();
  auto used = rx.next_used();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->id, tiny);
  EXPECT_EQ(used->len, 0u);
  EXPECT_FALSE(device->needs_reset());
  // The RST is still waiting for a proper buffer.
  uint16_t good = rx.add_chain({testing::Buffer{allocator.alloc(4096), 4096, true}});
  guest->kick_rx();
  used = rx.next_used();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->id, good);
  EXPECT_EQ(used->len, sizeof(VsockHeader));
}

TEST_F(VsockFixture, BrokenTxRingStopsTheDevice) {
  guest->tx_queue().publish(999);  // head beyond the 256-entry table
  guest->kick_tx();
  EXPECT_TRUE(device->needs_reset());
  EXPECT_EQ(guest->interrupt.config_changes, 1);
}

TEST_F(VsockFixture, ResetClosesConnectionsAndKeepsListening) {
  auto [client, conn] = host_connect(52);
  ASSERT_TRUE(conn);
  {
    auto guard = device->lock();
    device->reset();
  }
  EXPECT_TRUE(read_now(client.get()) == "<EOF>");
  EXPECT_EQ(device->connection_count(), 0u);
  // The socket path still accepts connections (queued until re-activation).
  common::UniqueFd again = connect_unix(uds);
  EXPECT_TRUE(again.valid());
}

// vhost-user: QEMU stops the rings (GET_VRING_BASE) to pause the VM and
// restarts them on `cont`. The connection survives; while stopped the device
// writes nothing into the rings and raises no interrupt; afterwards the bytes
// both sides sent in the meantime arrive, in order.
TEST_F(VsockFixture, StoppedQueuesKeepConnectionsAndDeliverEverythingOnRestart) {
  auto [client, conn] = host_connect(52);
  ASSERT_TRUE(conn);
  // MSG_NOSIGNAL: a device that dropped the connection fails the test, not
  // the test binary.
  auto host_send = [fd = client.get()](const std::string& text) {
    EXPECT_EQ(::send(fd, text.data(), text.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(text.size()));
  };
  host_send("before the pause, ");
  ASSERT_TRUE(guest->pump_until([&] { return conn->received.size() == 18; }));

  std::vector<QueueState> stopped;
  {
    auto guard = device->lock();
    stopped = device->stop_queues();
  }
  ASSERT_EQ(stopped.size(), 3u);
  EXPECT_FALSE(device->activated());
  // Nothing in flight: every chain the device took is back in the used ring.
  EXPECT_EQ(stopped[VsockDevice::kRxQueue].next_avail, guest->rx_queue().used_idx());
  EXPECT_EQ(stopped[VsockDevice::kTxQueue].next_avail, guest->tx_queue().used_idx());
  EXPECT_EQ(stopped[VsockDevice::kRxQueue].next_used, guest->rx_queue().used_idx());
  uint16_t rx_used = guest->rx_queue().used_idx();
  uint16_t tx_used = guest->tx_queue().used_idx();
  auto interrupts = guest->interrupt.used;

  host_send("during the pause, ");
  std::string from_guest = "the guest wrote this while stopped";
  guest->write(*conn, reinterpret_cast<const uint8_t*>(from_guest.data()), from_guest.size());
  // Kicks, host socket events and time pass; the device must stay quiet.
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
  std::string host_got;
  while (std::chrono::steady_clock::now() < until) {
    guest->pump(20);
    host_got += read_now(client.get());
  }
  EXPECT_EQ(guest->rx_queue().used_idx(), rx_used) << "the device wrote into a stopped RX ring";
  EXPECT_EQ(guest->tx_queue().used_idx(), tx_used) << "the device consumed a stopped TX ring";
  EXPECT_EQ(guest->interrupt.used, interrupts);
  EXPECT_EQ(host_got, "");
  EXPECT_EQ(device->connection_count(), 1u);

  host_send("after the pause");
  {
    auto guard = device->lock();
    device->restart_queues(ActivationContext{memory, stopped, kFeatures, guest->interrupt, loop});
    // What the transport does after a restart: kicks sent while stopped
    // went nowhere.
    for (uint16_t q = 0; q < 3; ++q) device->process_queue(q);
  }
  EXPECT_TRUE(device->activated());
  std::string expected = "before the pause, during the pause, after the pause";
  ASSERT_TRUE(guest->pump_until([&] { return conn->received.size() >= expected.size(); }));
  auto got = guest->read(*conn);
  EXPECT_EQ(std::string(got.begin(), got.end()), expected);
  EXPECT_EQ(host_got + client_read_until(client.get(), from_guest.size()), from_guest);
  EXPECT_FALSE(conn->reset);
  EXPECT_EQ(metrics.counter("vsock", "conns_removed").load(), 0u);
}

TEST_F(VsockFixture, TimeoutsDoNotRunWhileQueuesAreStopped) {
  auto [client, conn] = host_connect(52);
  ASSERT_TRUE(conn);
  // The host goes away: the device sends SHUTDOWN and waits 2 s for the
  // guest's RST. A paused guest cannot send it.
  client.reset();
  ASSERT_TRUE(guest->pump_until([&] { return conn->peer_shutdown != 0; }));
  std::vector<QueueState> stopped;
  {
    auto guard = device->lock();
    stopped = device->stop_queues();
  }
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(2500);
  while (std::chrono::steady_clock::now() < until) loop.run_once(50);
  EXPECT_EQ(device->connection_count(), 1u) << "the timeout ran while the guest was paused";
  {
    auto guard = device->lock();
    device->restart_queues(ActivationContext{memory, stopped, kFeatures, guest->interrupt, loop});
  }
  guest->pump(0);
  EXPECT_FALSE(conn->reset) << "the pause counted towards the 2 s";
  // The rest of the 2 s still runs out.
  ASSERT_TRUE(guest->pump_until([&] { return conn->reset; }, 5000));
  EXPECT_EQ(device->connection_count(), 0u);
}

TEST_F(VsockFixture, RestartOnFreshRingsIsADeviceReset) {
  auto [client, conn] = host_connect(52);
  ASSERT_TRUE(conn);
  {
    auto guard = device->lock();
    device->stop_queues();
  }
  EXPECT_EQ(device->connection_count(), 1u);
  // The driver reset the device while it was stopped and set up new rings:
  // QEMU restarts them at index 0.
  testing::DriverQueue rx(memory, allocator, 256), tx(memory, allocator, 256),
      ev(memory, allocator, 256);
  {
    auto guard = device->lock();
    device->restart_queues(ActivationContext{
        memory, {rx.state(), tx.state(), ev.state()}, kFeatures, guest->interrupt, loop});
  }
  EXPECT_TRUE(device->activated());
  EXPECT_EQ(device->connection_count(), 0u);
  EXPECT_EQ(read_now(client.get()), "<EOF>");
}

TEST_F(VsockFixture, ConnectionLimitRefusesThe1024th) {
  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);
  if (lim.rlim_cur < 4096) {
    rlimit more{std::min<rlim_t>(4096, lim.rlim_max), lim.rlim_max};
    if (more.rlim_cur < 4096 || ::setrlimit(RLIMIT_NOFILE, &more) < 0)
      GTEST_SKIP() << "needs 4096 fds";
  }
  std::vector<common::UniqueFd> clients;
  for (size_t i = 0; i < kVsockMaxConnections; ++i) {
    auto [client, conn] = host_connect(static_cast<uint32_t>(10000 + i));
    ASSERT_TRUE(conn) << i;
    clients.push_back(std::move(client));
  }
  EXPECT_EQ(device->connection_count(), kVsockMaxConnections);
  common::UniqueFd extra = connect_unix(uds);
  EXPECT_TRUE(client_sees_eof(extra.get()));
  // A guest-initiated one is refused with RST as well.
  VsockGuest::Conn& conn = guest->connect(1, 2);
  EXPECT_TRUE(guest->pump_until([&] { return conn.reset; }));
}

TEST_F(VsockFixture, ManyConnectionsTransferLargeStreamsBothWays) {
  constexpr int kConns = 8;
  constexpr size_t kBytes = 1 << 20;
  std::mt19937 rng(42);
  std::vector<std::string> payload(kConns);
  for (auto& p : payload) {
    p.resize(kBytes);
    for (auto& c : p) c = static_cast<char>(rng());
  }
  std::vector<common::UniqueFd> clients;
  std::vector<VsockGuest::Conn*> conns;
  for (int i = 0; i < kConns; ++i) {
    auto [client, conn] = host_connect(100 + i);
    ASSERT_TRUE(conn);
    ::fcntl(client.get(), F_SETFL, O_NONBLOCK);
    clients.push_back(std::move(client));
    conns.push_back(conn);
  }
  // Host -> guest and guest -> host at once, the guest echoing back what it reads.
  std::vector<size_t> sent(kConns, 0), echoed(kConns, 0);
  std::vector<std::string> host_got(kConns), guest_got(kConns);
  auto done = [&] {
    for (int i = 0; i < kConns; ++i) {
      if (host_got[i].size() < kBytes) return false;
    }
    return true;
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    for (int i = 0; i < kConns; ++i) {
      if (sent[i] < kBytes) {
        ssize_t n =
            ::send(clients[i].get(), payload[i].data() + sent[i], kBytes - sent[i], MSG_DONTWAIT);
        if (n > 0) sent[i] += static_cast<size_t>(n);
      }
      auto got = guest->read(*conns[i]);
      guest_got[i].append(got.begin(), got.end());
      if (echoed[i] < guest_got[i].size()) {
        echoed[i] += guest->write(*conns[i],
                                  reinterpret_cast<const uint8_t*>(guest_got[i].data()) + echoed[i],
                                  guest_got[i].size() - echoed[i]);
      }
      char buf[65536];
      ssize_t n = ::recv(clients[i].get(), buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) host_got[i].append(buf, static_cast<size_t>(n));
    }
    guest->pump(1);
  }
  for (int i = 0; i < kConns; ++i) {
    EXPECT_EQ(guest_got[i].size(), kBytes) << i;
    ASSERT_EQ(host_got[i].size(), kBytes) << i;
    EXPECT_TRUE(host_got[i] == payload[i]) << "connection " << i << " corrupted its stream";
  }
}

}  // namespace
}  // namespace ember::vmm::virtio
