// ember's real virtio devices (BlockDevice, VsockDevice with its hybrid
// unix-socket muxer, EntropyDevice) behind the real virtio-mmio transport, on
// /dev/kvm, driven by payload guests with a polling virtio driver
// (tests/payloads/lib/virtio*.c). The host side prepares images and sockets,
// the payload prints what the device gave it (hashes, status bytes, lengths),
// and the test compares that with what the host wrote and, after the VM
// exits, with what is in the files and on the sockets.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/harness/require.h"
#include "tests/integration/payload_runner.h"
#include "vmm/common/error.h"
#include "vmm/common/unique_fd.h"

namespace ember::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;
using Bytes = std::vector<uint8_t>;
using Clock = std::chrono::steady_clock;

constexpr auto kVmTimeout = 15s;
constexpr auto kIoTimeout = 10s;
constexpr size_t kSector = 512;

// --- what the payload computes, recomputed here (tests/payloads/lib/virtio.c)

// hash64 of tests/payloads/lib/virtio.h: 8-byte little-endian words (the
// last one zero-padded) mixed into an FNV-style state, then the length.
uint64_t hash64(const Bytes& b) {
  auto mix = [](uint64_t h, uint64_t w) {
    h ^= w;
    h *= 0x100000001b3ULL;
    return h ^ (h >> 29);
  };
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < b.size(); i += 8) {
    uint64_t w = 0;
    for (size_t k = 0; k < 8 && i + k < b.size(); ++k) w |= uint64_t(b[i + k]) << (8 * k);
    h = mix(h, w);
  }
  return mix(h, b.size());
}

Bytes pattern(uint64_t seed, size_t len) {
  Bytes out(len);
  uint64_t x = seed ? seed : 0x9e3779b97f4a7c15ULL;
  for (size_t i = 0; i < len; ++i) {
    if (i % 8 == 0) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
    }
    out[i] = static_cast<uint8_t>(x >> (8 * (i % 8)));
  }
  return out;
}

std::string hex(uint64_t v) {
  std::ostringstream s;
  s << std::hex << v;
  return s.str();
}

// --- console parsing

// The first console line that starts with `prefix` ("" if none).
std::string line_starting(const std::string& serial, const std::string& prefix) {
  size_t pos = serial.rfind(prefix, 0) == 0 ? 0 : serial.find("\n" + prefix);
  if (pos == std::string::npos) return "";
  if (serial[pos] == '\n') ++pos;
  size_t end = serial.find('\n', pos);
  return serial.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
}

// The value after `key=` in `line`, up to the next space.
std::string field(const std::string& line, const std::string& key) {
  size_t pos = line.find(" " + key + "=");
  if (pos == std::string::npos) return "";
  pos += key.size() + 2;
  size_t end = line.find(' ', pos);
  return line.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
}

bool wait_for_serial(PayloadVm& vm, const std::string& text, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (vm.serial().find(text) != std::string::npos) return true;
    if (vm.serial().find("EMBER-PAYLOAD: ") != std::string::npos) return false;
    std::this_thread::sleep_for(2ms);
  }
  return false;
}

void expect_clean_reset(const PayloadRun& run) {
  EXPECT_FALSE(run.timed_out) << run.serial << "\n" << run.log;
  EXPECT_EQ(run.exit.exit_code, 0) << run.exit.reason << "\n" << run.serial << "\n" << run.log;
  EXPECT_EQ(run.exit.reason, "guest reset through i8042");
  EXPECT_THAT(run.serial, HasSubstr("EMBER-PAYLOAD: PASS")) << run.log;
}

// --- files

Bytes random_bytes(size_t n, std::mt19937_64& rng) {
  Bytes b(n);
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    for (size_t k = 0; k < 8 && i + k < n; ++k) b[i + k] = static_cast<uint8_t>(v >> (8 * k));
  }
  return b;
}

void write_file(const std::filesystem::path& path, const Bytes& b) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  if (!out) throw common::Error("write " + path.string());
}

Bytes read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

Bytes slice(const Bytes& b, size_t offset, size_t len) {
  return Bytes(b.begin() + static_cast<ptrdiff_t>(offset),
               b.begin() + static_cast<ptrdiff_t>(offset + len));
}

// The first byte where two buffers differ, for failure messages.
std::string first_difference(const Bytes& got, const Bytes& want) {
  size_t n = std::min(got.size(), want.size());
  for (size_t i = 0; i < n; ++i) {
    if (got[i] != want[i]) return "first difference at byte " + std::to_string(i);
  }
  return got.size() == want.size()
             ? "equal"
             : "sizes " + std::to_string(got.size()) + " vs " + std::to_string(want.size());
}

// =========================================================================
// virtio-blk

struct TestDrive {
  std::string id;
  size_t bytes;
  bool read_only;
  vmm::CacheType cache;
  std::filesystem::path path;
  Bytes original;
};

struct BlockRun {
  TempDir dir{"ember-blk-payload"};
  uint64_t seed = 0;
  std::vector<TestDrive> drives;
  PayloadRun run;
  std::unique_ptr<PayloadVm> vm;

  // The payload's line for drive `i` that starts with `what`.
  std::string line(size_t i, const std::string& what) const {
    return line_starting(run.serial, "blk" + std::to_string(i) + " " + what);
  }
};

// Boots virtio_block with three drives in this order (so blk0, blk1, blk2):
// a read-write Unsafe one, a read-only one with an odd sector count, and a
// read-write Writeback one. Each image holds random bytes.
std::unique_ptr<BlockRun> run_block_payload() {
  auto b = std::make_unique<BlockRun>();
  std::mt19937_64 rng(std::random_device{}());
  b->seed = rng() | 1;
  b->drives = {
      {"data", 1 << 20, false, vmm::CacheType::kUnsafe, {}, {}},
      {"ro", (512 << 10) + 3 * kSector, true, vmm::CacheType::kUnsafe, {}, {}},
      {"wb", 768 << 10, false, vmm::CacheType::kWriteback, {}, {}},
  };
  b->vm = std::make_unique<PayloadVm>("virtio_block");
  for (auto& d : b->drives) {
    d.path = b->dir / (d.id + ".img");
    d.original = random_bytes(d.bytes, rng);
    write_file(d.path, d.original);
    vmm::DriveConfig config;
    config.drive_id = d.id;
    config.path_on_host = d.path.string();
    config.is_read_only = d.read_only;
    config.cache_type = d.cache;
    b->vm->resources().drives.push_back(config);
  }
  b->vm->resources().boot_source->boot_args = "console=ttyS0 ember.seed=0x" + hex(b->seed);
  b->run = b->vm->run(kVmTimeout);
  return b;
}

TEST(PayloadVirtioBlock, GuestReadsTheSectorsTheHostWrote) {
  EMBER_REQUIRE_KVM();
  auto b = run_block_payload();
  expect_clean_reset(b->run);
  EXPECT_THAT(b->run.serial, HasSubstr("blk devices=3\n"));
  for (size_t i = 0; i < b->drives.size(); ++i) {
    SCOPED_TRACE("drive " + b->drives[i].id);
    const Bytes& img = b->drives[i].original;
    uint64_t sectors = img.size() / kSector;
    std::string cap = b->line(i, "capacity=");
    EXPECT_EQ(field(cap, "capacity"), std::to_string(sectors)) << b->run.serial;
    EXPECT_EQ(field(cap, "seg_max"), "126") << cap;
    std::string first = b->line(i, "read sector=0 count=16 ");
    EXPECT_EQ(field(first, "status"), "0") << first;
    EXPECT_EQ(field(first, "hash"), hex(hash64(slice(img, 0, 16 * kSector))))
        << "sectors 0-15 (two descriptors)";
    std::string last = b->line(i, "read sector=" + std::to_string(sectors - 1) + " count=1 ");
    EXPECT_EQ(field(last, "status"), "0") << b->run.serial;
    EXPECT_EQ(field(last, "hash"), hex(hash64(slice(img, (sectors - 1) * kSector, kSector))))
        << "the last sector";
  }
  EXPECT_EQ(b->vm->metrics().counter("block_data", "read_count").load(), 3u)
      << "two reads and the read-back";
}

TEST(PayloadVirtioBlock, GuestWritesReachTheBackingFile) {
  EMBER_REQUIRE_KVM();
  auto b = run_block_payload();
  expect_clean_reset(b->run);
  for (size_t i : {size_t{0}, size_t{2}}) {
    const TestDrive& d = b->drives[i];
    SCOPED_TRACE("drive " + d.id);
    Bytes written = pattern(b->seed + i, 4 * kSector);
    std::string w = b->line(i, "write sector=4 count=4 ");
    EXPECT_EQ(field(w, "status"), "0") << b->run.serial;
    EXPECT_EQ(field(w, "hash"), hex(hash64(written))) << "the payload sent what the host expects";
    std::string rb = b->line(i, "readback sector=4 count=4 ");
    EXPECT_EQ(field(rb, "status"), "0") << rb;
    EXPECT_EQ(field(rb, "hash"), hex(hash64(written))) << "read after write through the device";
    // The file: sectors 4-7 replaced, everything else as the host wrote it.
    Bytes want = d.original;
    std::copy(written.begin(), written.end(), want.begin() + 4 * kSector);
    Bytes got = read_file(d.path);
    EXPECT_TRUE(got == want) << first_difference(got, want);
  }
  EXPECT_EQ(b->vm->metrics().counter("block_data", "write_count").load(), 1u);
  EXPECT_EQ(b->vm->metrics().counter("block_data", "write_bytes").load(), 4 * kSector);
}

TEST(PayloadVirtioBlock, ReadOnlyDriveRejectsWritesWithIoErr) {
  EMBER_REQUIRE_KVM();
  auto b = run_block_payload();
  expect_clean_reset(b->run);
  const TestDrive& ro = b->drives[1];
  EXPECT_EQ(field(b->line(1, "capacity="), "ro"), "1") << "VIRTIO_BLK_F_RO offered and negotiated";
  EXPECT_EQ(field(b->line(0, "capacity="), "ro"), "0");
  EXPECT_EQ(field(b->line(1, "capacity="), "features"), "0x100000024")
      << "VERSION_1 | RO | SEG_MAX";
  EXPECT_EQ(field(b->line(1, "write sector=4 count=4 "), "status"), "1") << "VIRTIO_BLK_S_IOERR";
  std::string rb = b->line(1, "readback sector=4 count=4 ");
  EXPECT_EQ(field(rb, "status"), "0");
  EXPECT_EQ(field(rb, "hash"), hex(hash64(slice(ro.original, 4 * kSector, 4 * kSector))))
      << "sectors unchanged";
  Bytes got = read_file(ro.path);
  EXPECT_TRUE(got == ro.original) << first_difference(got, ro.original);
  EXPECT_EQ(b->vm->metrics().counter("block_ro", "write_count").load(), 0u);
}

TEST(PayloadVirtioBlock, WritebackDriveOffersFlushAndFlushes) {
  EMBER_REQUIRE_KVM();
  auto b = run_block_payload();
  expect_clean_reset(b->run);
  EXPECT_EQ(field(b->line(2, "capacity="), "flush"), "1");
  EXPECT_EQ(field(b->line(2, "capacity="), "features"), "0x100000204")
      << "VERSION_1 | FLUSH | SEG_MAX";
  EXPECT_EQ(field(b->line(0, "capacity="), "flush"), "0") << "Unsafe drives do not offer FLUSH";
  EXPECT_EQ(field(b->line(0, "capacity="), "features"), "0x100000004");
  EXPECT_EQ(field(b->line(2, "flush "), "status"), "0") << b->run.serial;
  EXPECT_EQ(b->line(0, "flush "), "") << "no flush where it was not negotiated";
  EXPECT_EQ(b->vm->metrics().counter("block_wb", "flush_count").load(), 1u);
  EXPECT_EQ(b->vm->metrics().counter("block_data", "flush_count").load(), 0u);
}

TEST(PayloadVirtioBlock, OutOfRangeUnsupportedAndGetIdRequests) {
  EMBER_REQUIRE_KVM();
  auto b = run_block_payload();
  expect_clean_reset(b->run);
  for (size_t i = 0; i < b->drives.size(); ++i) {
    const TestDrive& d = b->drives[i];
    SCOPED_TRACE("drive " + d.id);
    EXPECT_EQ(field(b->line(i, "read-past-end "), "status"), "1")
        << "a read over the last sector: IOERR";
    EXPECT_EQ(field(b->line(i, "unsupported "), "status"), "2") << "request type 99: UNSUPP";
    // Firecracker's serial: st_dev, st_rdev, st_ino in decimal, cut to 20 bytes.
    struct stat st {};
    ASSERT_EQ(::stat(d.path.c_str(), &st), 0);
    std::string id =
        (std::to_string(st.st_dev) + std::to_string(st.st_rdev) + std::to_string(st.st_ino))
            .substr(0, 20);
    std::string line = b->line(i, "get-id ");
    EXPECT_EQ(field(line, "status"), "0") << line;
    EXPECT_EQ(field(line, "used"), "21") << "20 id bytes and the status";
    EXPECT_THAT(line, HasSubstr("id=[" + id + "]"));
  }
}

// =========================================================================
// virtio-vsock

common::UniqueFd unix_socket() {
  common::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) common::throw_errno("create a unix socket");
  return fd;
}

sockaddr_un unix_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) throw common::Error("socket path too long: " + path);
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

common::UniqueFd unix_listen(const std::string& path) {
  common::UniqueFd fd = unix_socket();
  sockaddr_un addr = unix_address(path);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0)
    common::throw_errno("bind " + path);
  if (::listen(fd.get(), 4) < 0) common::throw_errno("listen on " + path);
  return fd;
}

common::UniqueFd unix_connect(const std::string& path) {
  common::UniqueFd fd = unix_socket();
  sockaddr_un addr = unix_address(path);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0)
    common::throw_errno("connect " + path);
  return fd;
}

// Waits for `events` on `fd` until `deadline`; false on timeout.
bool wait_fd(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    int rc = ::poll(&p, 1, static_cast<int>(left));
    if (rc > 0) return true;
    if (rc < 0 && errno != EINTR) common::throw_errno("poll");
  }
}

common::UniqueFd accept_within(int listener, std::chrono::milliseconds timeout) {
  if (!wait_fd(listener, POLLIN, Clock::now() + timeout)) return {};
  return common::UniqueFd(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
}

// Reads until end of stream; *timed_out says whether it got there.
Bytes read_to_eof(int fd, std::chrono::milliseconds timeout, bool* timed_out) {
  Bytes out;
  auto deadline = Clock::now() + timeout;
  *timed_out = false;
  uint8_t buf[65536];
  for (;;) {
    if (!wait_fd(fd, POLLIN, deadline)) {
      *timed_out = true;
      return out;
    }
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return out;  // EOF, or ECONNRESET when the muxer reset it
    out.insert(out.end(), buf, buf + n);
  }
}

// Reads one line byte by byte (nothing after the newline is consumed).
std::string read_line(int fd, std::chrono::milliseconds timeout) {
  std::string line;
  auto deadline = Clock::now() + timeout;
  while (line.size() < 64) {
    if (!wait_fd(fd, POLLIN, deadline)) return line;
    char c;
    ssize_t n = ::read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return line;
    line += c;
    if (c == '\n') return line;
  }
  return line;
}

bool write_all(int fd, const uint8_t* data, size_t len, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (len) {
    if (!wait_fd(fd, POLLOUT, deadline)) return false;
    ssize_t n = ::send(fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      return false;
    }
    data += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}
bool write_all(int fd, const std::string& s, std::chrono::milliseconds timeout) {
  return write_all(fd, reinterpret_cast<const uint8_t*>(s.data()), s.size(), timeout);
}

struct VsockSetup {
  TempDir dir{"ember-vsock-payload"};
  std::mt19937_64 rng{std::random_device{}()};
  uint64_t seed = rng() | 1;
  uint32_t cid = 3 + static_cast<uint32_t>(rng() % 100000);
  std::string uds = (dir / "v.sock").string();
  PayloadVm vm{"virtio_vsock"};

  VsockSetup() { vm.resources().vsock = vmm::VsockConfig{cid, uds}; }
  void boot_args(const std::string& extra) {
    vm.resources().boot_source->boot_args = "console=ttyS0 ember.seed=0x" + hex(seed) + " " + extra;
  }
};

TEST(PayloadVirtioVsock, GuestReadsItsCidFromConfigSpace) {
  EMBER_REQUIRE_KVM();
  VsockSetup s;
  s.boot_args("");
  PayloadRun run = s.vm.run(kVmTimeout);
  expect_clean_reset(run);
  EXPECT_THAT(run.serial,
              HasSubstr("vsock guest_cid=" + std::to_string(s.cid) + " features=0x100000000\n"))
      << "le64 guest_cid at config offset 0; the driver acked VERSION_1 only";
  EXPECT_THAT(run.serial, HasSubstr("strays=0 events=0"));
}

// Guest-initiated: REQUEST to CID 2 port P reaches the host listener at
// <uds_path>_<P>; a port nobody listens on is refused with RST. Both
// directions carry more than one connection buffer (64 KiB), so credit
// updates must flow both ways.
TEST(PayloadVirtioVsock, GuestConnectsToAHostListenerAndBothSidesExchangeData) {
  EMBER_REQUIRE_KVM();
  VsockSetup s;
  uint32_t port = 5000 + static_cast<uint32_t>(s.rng() % 1000);
  uint32_t refused = port + 1;
  constexpr size_t kGuestSends = 150000;
  constexpr size_t kHostSends = 100000;
  Bytes reply = random_bytes(kHostSends, s.rng);
  common::UniqueFd listener = unix_listen(s.uds + "_" + std::to_string(port));
  s.boot_args("ember.refused=" + std::to_string(refused) + " ember.connect=" +
              std::to_string(port) + " ember.send_bytes=" + std::to_string(kGuestSends));

  Bytes received;
  bool accepted = false, read_timed_out = false, replied = false;
  std::jthread host([&] {
    common::UniqueFd conn = accept_within(listener.get(), kIoTimeout);
    accepted = static_cast<bool>(conn);
    if (!conn) return;
    received = read_to_eof(conn.get(), kIoTimeout, &read_timed_out);
    replied = write_all(conn.get(), reply.data(), reply.size(), kIoTimeout);
  });
  s.vm.start();
  PayloadRun run = s.vm.wait(kVmTimeout);
  host.join();

  expect_clean_reset(run);
  const std::string& out = run.serial;
  EXPECT_THAT(line_starting(out, "vsock connect port=" + std::to_string(refused) + " "),
              HasSubstr("result=-1"))
      << "RST from the muxer for a port without a listener\n"
      << out;
  std::string connect = line_starting(out, "vsock connect port=" + std::to_string(port) + " ");
  EXPECT_EQ(field(connect, "result"), "0") << out;
  ASSERT_TRUE(accepted) << "the guest's REQUEST never reached " << s.uds << "_" << port << "\n"
                        << out << run.log;
  EXPECT_FALSE(read_timed_out) << "the guest's SHUTDOWN(SEND) never became EOF";
  Bytes want = pattern(s.seed, kGuestSends);
  EXPECT_TRUE(received == want) << "guest -> host: " << first_difference(received, want);
  std::string sent = line_starting(out, "vsock sent ");
  EXPECT_EQ(field(sent, "bytes"), std::to_string(kGuestSends)) << sent;
  EXPECT_EQ(field(sent, "hash"), hex(hash64(want)));
  EXPECT_EQ(field(sent, "status"), "0");
  EXPECT_TRUE(replied);
  std::string got = line_starting(out, "vsock received ");
  EXPECT_EQ(field(got, "bytes"), std::to_string(kHostSends)) << out;
  EXPECT_EQ(field(got, "hash"), hex(hash64(reply))) << "host -> guest content";
  EXPECT_EQ(field(got, "end"), "0") << "end of stream after the host closed";
  EXPECT_THAT(line_starting(out, "vsock connect closed="),
              ::testing::AnyOf("vsock connect closed=0", "vsock connect closed=1"))
      << "a clean SHUTDOWN/RST close";
  EXPECT_EQ(s.vm.metrics().counter("vsock", "tx_bytes_count").load(), kGuestSends);
  EXPECT_EQ(s.vm.metrics().counter("vsock", "rx_bytes_count").load(), kHostSends);
}

// Host-initiated: "CONNECT <port>\n" on the hybrid socket becomes a REQUEST
// the payload accepts ("OK <local port>\n" to the host); an unknown port is
// refused by the guest's RST (the host sees the socket close). The payload
// echoes every byte until the host shuts down its sending side.
TEST(PayloadVirtioVsock, HostConnectsThroughTheHybridSocketAndGuestEchoes) {
  EMBER_REQUIRE_KVM();
  VsockSetup s;
  uint32_t port = 1024 + static_cast<uint32_t>(s.rng() % 1000);
  constexpr size_t kHostSends = 200000;
  Bytes data = random_bytes(kHostSends, s.rng);
  s.boot_args("ember.listen=" + std::to_string(port));
  s.vm.start();
  ASSERT_TRUE(
      wait_for_serial(s.vm, "vsock listening port=" + std::to_string(port) + "\n", kIoTimeout))
      << s.vm.serial() << s.vm.log();

  {
    common::UniqueFd probe = unix_connect(s.uds);
    ASSERT_TRUE(write_all(probe.get(), "CONNECT " + std::to_string(port + 1) + "\n", kIoTimeout));
    bool timed_out = false;
    Bytes answer = read_to_eof(probe.get(), kIoTimeout, &timed_out);
    EXPECT_FALSE(timed_out) << "a port the guest does not listen on must be closed";
    EXPECT_EQ(std::string(answer.begin(), answer.end()), "") << "no OK for a refused port";
  }

  common::UniqueFd conn = unix_connect(s.uds);
  ASSERT_TRUE(write_all(conn.get(), "CONNECT " + std::to_string(port) + "\n", kIoTimeout));
  std::string ok = read_line(conn.get(), kIoTimeout);
  ASSERT_EQ(ok.rfind("OK ", 0), 0u) << "handshake answer: \"" << ok << "\"\n" << s.vm.serial();
  uint64_t local_port = std::stoull(ok.substr(3));
  EXPECT_GE(local_port, 1ULL << 30) << "Firecracker's host-side port range";

  bool wrote = false;
  std::jthread writer([&] {
    wrote = write_all(conn.get(), data.data(), data.size(), kIoTimeout);
    ::shutdown(conn.get(), SHUT_WR);
  });
  bool timed_out = false;
  Bytes echoed = read_to_eof(conn.get(), kIoTimeout, &timed_out);
  writer.join();
  PayloadRun run = s.vm.wait(kVmTimeout);

  expect_clean_reset(run);
  EXPECT_TRUE(wrote);
  EXPECT_FALSE(timed_out);
  EXPECT_TRUE(echoed == data) << "echo: " << first_difference(echoed, data);
  const std::string& out = run.serial;
  EXPECT_THAT(out, HasSubstr("vsock accepted port=" + std::to_string(port) +
                             " peer_port=" + std::to_string(local_port) + "\n"))
      << "the payload saw the REQUEST from the port the muxer announced";
  std::string echo = line_starting(out, "vsock echo bytes=");
  EXPECT_EQ(field(echo, "bytes"), std::to_string(kHostSends)) << out;
  EXPECT_EQ(field(echo, "hash"), hex(hash64(data)));
  EXPECT_EQ(field(echo, "end"), "0");
  EXPECT_EQ(field(echo, "send_status"), "0");
  EXPECT_THAT(out, HasSubstr("vsock echo closed=0\n"))
      << "our SHUTDOWN answered by the muxer's RST";
  EXPECT_GE(std::stoul(field(line_starting(out, "vsock stats "), "rsts_sent")), 1u)
      << "the refused REQUEST";
}

// =========================================================================
// virtio-rng

TEST(PayloadVirtioRng, GuestReadsRandomBytesThatDiffer) {
  EMBER_REQUIRE_KVM();
  PayloadVm vm("virtio_rng");
  vm.resources().entropy = vmm::EntropyConfig{};
  PayloadRun run = vm.run(kVmTimeout);
  expect_clean_reset(run);
  std::string r1 = line_starting(run.serial, "rng read1 "),
              r2 = line_starting(run.serial, "rng read2 ");
  EXPECT_EQ(field(r1, "status"), "0") << run.serial;
  EXPECT_EQ(field(r1, "len"), "64");
  EXPECT_EQ(field(r2, "len"), "64");
  std::string b1 = field(r1, "bytes"), b2 = field(r2, "bytes");
  ASSERT_EQ(b1.size(), 128u) << r1;
  ASSERT_EQ(b2.size(), 128u) << r2;
  EXPECT_NE(b1, std::string(128, '0'));
  EXPECT_NE(b2, std::string(128, '0'));
  EXPECT_NE(b1, b2) << "two reads returned the same bytes";
  std::string large = line_starting(run.serial, "rng large ");
  EXPECT_EQ(field(large, "status"), "0") << large;
  EXPECT_EQ(field(large, "len"), "4096") << "both descriptors filled";
  // 4096 uniform bytes cover all 256 values with overwhelming probability
  // and hold about 16 zeros; a constant or half-filled buffer cannot pass.
  EXPECT_GE(std::stoi(field(large, "distinct")), 240) << large;
  EXPECT_LE(std::stoi(field(large, "zeros")), 64) << large;
  EXPECT_EQ(vm.metrics().counter("entropy", "entropy_bytes").load(), 64u + 64u + 4096u);
}

}  // namespace
}  // namespace ember::testing
