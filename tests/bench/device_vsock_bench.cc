// vsock stream throughput through the device model and muxer, against a raw
// unix socket pair in the same run. A host thread writes (or reads) a unix
// socket connected with "CONNECT <port>"; the main thread runs the device's
// event loop and a guest-side driver over real virtqueues that consumes (or
// produces) the stream as fast as it can, honouring credit.
//
//   device_vsock_bench [seconds_per_case=2]
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "vmm/devices/virtio/vsock/testing/vsock_guest.h"
#include "vmm/devices/virtio/vsock/vsock_device.h"

using namespace ember::vmm;
using namespace ember::vmm::virtio;
using ember::common::UniqueFd;
using Clock = std::chrono::steady_clock;

namespace {

constexpr size_t kChunk = 64 * 1024;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Raw baseline: one thread writes 64 KiB chunks, the other reads them.
double raw_socketpair(double seconds) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return 0;
  UniqueFd a(sv[0]), b(sv[1]);
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    std::vector<char> buf(kChunk, 'r');
    while (!stop) {
      if (::send(a.get(), buf.data(), buf.size(), MSG_NOSIGNAL) < 0) break;
    }
  });
  std::vector<char> buf(kChunk);
  uint64_t total = 0;
  auto start = Clock::now();
  while (seconds_since(start) < seconds) {
    ssize_t n = ::recv(b.get(), buf.data(), buf.size(), 0);
    if (n <= 0) break;
    total += static_cast<uint64_t>(n);
  }
  double elapsed = seconds_since(start);
  stop = true;
  ::shutdown(b.get(), SHUT_RDWR);
  writer.join();
  return static_cast<double>(total) / elapsed;
}

struct Setup {
  std::string uds = "/tmp/ember-vsock-bench-" + std::to_string(::getpid()) + ".sock";
  Logger logger;
  Metrics metrics;
  GuestMemory memory = GuestMemory::anonymous({{GuestAddress(0), 64 << 20}});
  testing::GuestAllocator allocator{GuestAddress(0x1000), (64 << 20) - 0x1000};
  ember::common::EventLoop loop;
  std::unique_ptr<VsockDevice> device;
  std::unique_ptr<testing::VsockGuest> guest;
  UniqueFd client;
  testing::VsockGuest::Conn* conn = nullptr;

  explicit Setup(uint32_t rx_buffer_size, uint32_t rx_buffers = 128) {
    ::unlink(uds.c_str());
    device = std::make_unique<VsockDevice>(VsockConfig{3, uds}, logger, metrics);
    guest = std::make_unique<testing::VsockGuest>(memory, allocator, *device, loop, 3, rx_buffers,
                                                  rx_buffer_size);
    guest->activate((uint64_t(1) << kFeatureVersion1) | (uint64_t(1) << kFeatureEventIdx));
    guest->sink = true;
    guest->listen(52);
    client.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, uds.c_str(), sizeof addr.sun_path - 1);
    if (::connect(client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) std::exit(1);
    if (::write(client.get(), "CONNECT 52\n", 11) != 11) std::exit(1);
    guest->pump_until([&] { return !guest->accepted().empty(); });
    conn = guest->accepted().front();
    char ok[32];
    guest->pump_until([&] { return ::recv(client.get(), ok, sizeof ok, MSG_DONTWAIT) > 0; });
  }
  ~Setup() {
    guest.reset();
    device.reset();
    ::unlink(uds.c_str());
  }
};

// Host writes, the guest consumes.
double host_to_guest(double seconds, uint32_t rx_buffer_size, uint32_t rx_buffers = 128) {
  Setup s(rx_buffer_size, rx_buffers);
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    std::vector<char> buf(kChunk, 'h');
    while (!stop) {
      if (::send(s.client.get(), buf.data(), buf.size(), MSG_NOSIGNAL) < 0) break;
    }
  });
  s.guest->pump(0);
  uint64_t before = s.conn->total_received;
  auto start = Clock::now();
  while (seconds_since(start) < seconds) s.guest->pump(5);
  double elapsed = seconds_since(start);
  uint64_t total = s.conn->total_received - before;
  stop = true;
  ::shutdown(s.client.get(), SHUT_RDWR);
  writer.join();
  return static_cast<double>(total) / elapsed;
}

// The guest produces, the host reads.
double guest_to_host(double seconds) {
  Setup s(4096);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> received{0};
  std::thread reader([&] {
    std::vector<char> buf(kChunk);
    while (!stop) {
      ssize_t n = ::recv(s.client.get(), buf.data(), buf.size(), 0);
      if (n <= 0) break;
      received += static_cast<uint64_t>(n);
    }
  });
  auto start = Clock::now();
  uint64_t before = received;
  while (seconds_since(start) < seconds) {
    // Out of credit: block in the device loop (like a guest waiting for an
    // interrupt) instead of spinning against the host reader for CPU.
    size_t sent = s.guest->write_bulk(*s.conn, 1 << 20);
    s.guest->pump(sent ? 0 : 1);
  }
  double elapsed = seconds_since(start);
  uint64_t total = received - before;
  stop = true;
  ::shutdown(s.client.get(), SHUT_RDWR);
  reader.join();
  return static_cast<double>(total) / elapsed;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = argc > 1 ? std::stod(argv[1]) : 2.0;
  std::string only = argc > 2 ? argv[2] : "";  // "h2g" or "g2h": one case, for profiling
  if (only == "h2g") return std::printf("%.0f MB/s\n", host_to_guest(seconds, 64 * 1024) / 1e6) < 0;
  if (only == "g2h") return std::printf("%.0f MB/s\n", guest_to_host(seconds) / 1e6) < 0;
  std::printf(
      "vsock stream through VsockDevice + muxer vs a raw unix socketpair, %.1f s per case\n",
      seconds);
  double raw = raw_socketpair(seconds);
  std::printf("%-34s %10.0f MB/s\n", "raw socketpair (64 KiB writes)", raw / 1e6);
  struct {
    const char* name;
    double value;
  } cases[] = {
      {"host->guest, 128 x 4 KiB RX bufs", host_to_guest(seconds, 4096)},
      {"host->guest, 128 x 64 KiB RX bufs", host_to_guest(seconds, 64 * 1024)},
      {"host->guest, 16 x 64 KiB RX bufs", host_to_guest(seconds, 64 * 1024, 16)},
      {"guest->host, 64 KiB packets", guest_to_host(seconds)},
  };
  for (auto& c : cases) {
    std::printf("%-34s %10.0f MB/s %6.0f%% of raw\n", c.name, c.value / 1e6, 100 * c.value / raw);
  }
  return 0;
}
