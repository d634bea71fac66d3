// A real Linux guest under QEMU (TCG here) uses ember's block, vsock and rng
// devices, served over vhost-user by ember's backend (vmm/vhost_user): the
// guest's own virtio drivers exercise ember's device code, which KVM on these
// machines cannot run a Linux guest for (DESIGN.md "Testing", point 3).
//
// The guest's /init is tests/e2e/guest/vhost_user_guest.cc; the host side
// drives each scenario by watching its console markers.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include "tests/e2e/guest/vhost_user_scenario.h"
#include "tests/harness/command.h"
#include "tests/harness/disk_image.h"
#include "tests/harness/qemu_guest.h"
#include "tests/harness/require.h"
#include "tests/harness/temp_dir.h"
#include "vmm/common/child_process.h"
#include "vmm/common/unique_fd.h"
#include "vmm/devices/virtio/block/block_device.h"
#include "vmm/devices/virtio/rng/entropy_device.h"
#include "vmm/devices/virtio/vsock/vsock_device.h"
#include "vmm/vhost_user/vhost_user_backend.h"

namespace ember::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using vmm::vhost_user::VhostUserBackend;
using namespace vhost_user_e2e;

// Under TCG on a loaded 2-core machine a boot takes seconds; these limits
// only catch a guest that is stuck.
constexpr auto kBootTimeout = 120s;
constexpr auto kStepTimeout = 60s;
constexpr uint32_t kGuestCid = 3;

fs::path vhost_user_initrd() { return guest_image_dir() / "initramfs-vhost-user.cpio"; }

#define REQUIRE_VHOST_USER_GUEST()                                                              \
  do {                                                                                          \
    EMBER_REQUIRE(have_qemu(), "qemu-system-x86_64 not installed");                             \
    EMBER_REQUIRE(fs::exists(guest_image_dir() / "vmlinux") && fs::exists(vhost_user_initrd()), \
                  "guest image missing in " + guest_image_dir().string() +                      \
                      " (vmlinux, initramfs-vhost-user.cpio): build the guest-image target");   \
  } while (0)

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

sockaddr_un unix_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), std::min(path.size(), sizeof addr.sun_path - 1));
  return addr;
}

bool wait_fd(int fd, short events, std::chrono::milliseconds timeout) {
  pollfd p{fd, events, 0};
  return ::poll(&p, 1, static_cast<int>(timeout.count())) > 0;
}

// Reads until EOF (or `timeout` without data); returns what arrived.
std::vector<uint8_t> read_until_eof(int fd, std::chrono::milliseconds timeout) {
  std::vector<uint8_t> out;
  uint8_t buf[65536];
  for (;;) {
    if (!wait_fd(fd, POLLIN, timeout)) return out;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return out;
    out.insert(out.end(), buf, buf + n);
  }
}

bool write_all(int fd, const uint8_t* data, size_t len) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::send(fd, data + done, len - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// Firecracker's hybrid vsock, host-initiated: connect to the device's unix
// socket and ask for a guest port (reference/firecracker-compat.md §3).
common::UniqueFd hybrid_connect(const std::string& uds_path, uint32_t port, std::string& answer) {
  common::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr = unix_address(uds_path);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    answer = std::string("connect: ") + std::strerror(errno);
    return {};
  }
  std::string request = "CONNECT " + std::to_string(port) + "\n";
  if (!write_all(fd.get(), reinterpret_cast<const uint8_t*>(request.data()), request.size()))
    return {};
  answer.clear();
  char c;
  while (answer.size() < 64 && wait_fd(fd.get(), POLLIN, 10s) && ::read(fd.get(), &c, 1) == 1) {
    if (c == '\n') return fd;
    answer += c;
  }
  return {};
}

// Just enough of the QEMU Machine Protocol (QEMU docs/interop/qmp-spec.rst)
// for `stop` and `cont`: one JSON object per line, a greeting, then
// `qmp_capabilities`; each command answered by a line with "return" or
// "error", asynchronous events ("event") in between.
class Qmp {
 public:
  // Connects to QEMU's `-qmp unix:<path>,server=on,wait=off` socket.
  bool connect(const std::string& path, std::string& error) {
    for (int attempt = 0; attempt < 100 && !fd_; ++attempt) {
      common::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
      sockaddr_un addr = unix_address(path);
      if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
        fd_ = std::move(fd);
      } else {
        std::this_thread::sleep_for(50ms);
      }
    }
    if (!fd_) {
      error = "cannot connect to QMP at " + path + ": " + std::strerror(errno);
      return false;
    }
    std::string greeting = read_line();
    if (greeting.find("\"QMP\"") == std::string::npos) {
      error = "unexpected QMP greeting: " + greeting;
      return false;
    }
    return execute("qmp_capabilities", error);
  }

  // Runs `command`; false with `error` set on an error answer or silence.
  bool execute(const std::string& command, std::string& error) {
    std::string line = "{\"execute\": \"" + command + "\"}\n";
    if (!write_all(fd_.get(), reinterpret_cast<const uint8_t*>(line.data()), line.size())) {
      error = "qmp " + command + ": send failed";
      return false;
    }
    for (;;) {
      std::string answer = read_line();
      if (answer.empty()) {
        error = "qmp " + command + ": no answer";
        return false;
      }
      if (answer.find("\"return\"") != std::string::npos) return true;
      if (answer.find("\"error\"") != std::string::npos) {
        error = "qmp " + command + ": " + answer;
        return false;
      }
    }
  }

 private:
  std::string read_line() {
    for (;;) {
      if (auto nl = buffer_.find('\n'); nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return line;
      }
      if (!wait_fd(fd_.get(), POLLIN, kStepTimeout)) return "";
      char buf[4096];
      ssize_t n = ::read(fd_.get(), buf, sizeof buf);
      if (n <= 0) return "";
      buffer_.append(buf, static_cast<size_t>(n));
    }
  }

  common::UniqueFd fd_;
  std::string buffer_;
};

struct VhostUserGuestTest : ::testing::Test {
  TempDir dir{"ember-vu-e2e"};
  fs::path image = dir / "rootfs.ext4";
  fs::path log_path = dir / "backends.log";
  std::string vsock_uds = (dir / "vsock-uds.sock").string();
  vmm::Logger logger;
  vmm::Metrics metrics;
  std::vector<std::unique_ptr<VhostUserBackend>> backends;
  std::vector<std::string> qemu_args;

  void SetUp() override {
    vmm::LoggerConfig config;
    config.log_path = log_path.string();
    config.level = vmm::LogLevel::kInfo;
    config.show_level = true;
    logger.configure(config);
  }
  void TearDown() override {
    for (auto& b : backends) b->stop();
  }

  std::string backend_log() const { return "--- ember backends log ---\n" + read_text(log_path); }

  void add_backend(const std::string& name, std::unique_ptr<vmm::virtio::VirtioDevice> device,
                   const std::string& qemu_device) {
    std::string socket = (dir / (name + ".sock")).string();
    backends.push_back(
        std::make_unique<VhostUserBackend>(socket, std::move(device), logger, metrics, name));
    backends.back()->start();
    qemu_args.insert(qemu_args.end(), {"-chardev", "socket,id=" + name + ",path=" + socket,
                                       "-device", qemu_device + ",chardev=" + name});
  }
  VhostUserBackend& add_block(const fs::path& path) {
    vmm::DriveConfig drive;
    drive.drive_id = "rootfs";
    drive.path_on_host = path.string();
    add_backend("blk", std::make_unique<vmm::virtio::BlockDevice>(drive, logger, metrics),
                "vhost-user-blk");
    return *backends.back();
  }
  void add_vsock() {
    vmm::VsockConfig vsock{kGuestCid, vsock_uds};
    add_backend("vsock", std::make_unique<vmm::virtio::VsockDevice>(vsock, logger, metrics),
                "vhost-user-vsock-device");
  }
  void add_rng() {
    add_backend("rng",
                std::make_unique<vmm::virtio::EntropyDevice>(vmm::EntropyConfig{}, logger, metrics),
                "vhost-user-rng");
  }

  QemuGuestConfig guest_config(const std::string& scenarios) const {
    QemuGuestConfig config;
    config.kernel = guest_image_dir() / "vmlinux";
    config.initrd = vhost_user_initrd();
    config.shared_memory = true;  // vhost-user backends map guest RAM
    config.extra_cmdline = "ember.vu=" + scenarios;
    config.extra_args = qemu_args;
    config.console_log_path = dir / "console.log";
    return config;
  }

  void make_image(const fs::path& path, const std::string& file, const std::string& content,
                  uint64_t size) {
    fs::path root = dir / ("root-" + path.filename().string());
    fs::create_directories(root);
    std::ofstream(root / file) << content;
    make_ext4_image(path, root, size);
  }

  void expect_clean_exit(QemuGuest& guest) {
    ASSERT_TRUE(guest.wait_for_line("^EMBER-VU-DONE errors=0$", kStepTimeout))
        << guest.describe() << backend_log();
    EXPECT_TRUE(guest.lines_matching("EMBER-VU-ERROR").empty()) << guest.describe();
    auto status = guest.wait_for_exit(kStepTimeout);
    ASSERT_TRUE(status) << "guest did not shut down\n" << guest.describe();
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
        << "QEMU " << common::describe_wait_status(*status) << "\n"
        << guest.describe();
  }
};

TEST_F(VhostUserGuestTest, GuestMountsExt4FromEmberBlockAndWritesBack) {
  REQUIRE_VHOST_USER_GUEST();
  EMBER_REQUIRE(have_e2fsprogs(), "mkfs.ext4/debugfs (e2fsprogs) not installed");
  make_image(image, "hello.txt", "hello from the host\n", 32 << 20);
  add_block(image);
  QemuGuest guest(guest_config("blk-rw"));

  ASSERT_TRUE(guest.wait_for_line("^EMBER-GUEST-READY", kBootTimeout))
      << guest.describe() << backend_log();
  std::cout << "[ boot     ] " << guest.boot_time()->count() << " ms to EMBER-GUEST-READY ("
            << select_accelerator() << ")\n";
  ASSERT_TRUE(guest.wait_for_line("^EMBER-VU blk-read=hello from the host$", kStepTimeout))
      << guest.describe() << backend_log();
  auto wrote = guest.wait_for_line("^EMBER-VU blk-wrote ", kStepTimeout);
  ASSERT_TRUE(wrote) << guest.describe() << backend_log();
  expect_clean_exit(guest);
  for (auto& b : backends) b->stop();

  EXPECT_EQ(read_file_from_ext4(image, "/from-guest.txt"),
            "written by the guest over vhost-user\n");
  std::string big = read_file_from_ext4(image, "/big.bin");
  ASSERT_EQ(big.size(), kBigFileBytes);
  std::vector<uint8_t> expected = pattern(kBigFileBytes);
  EXPECT_TRUE(std::memcmp(big.data(), expected.data(), big.size()) == 0)
      << "/big.bin differs from the guest's data";
  EXPECT_EQ(*wrote, "EMBER-VU blk-wrote bytes=" + std::to_string(kBigFileBytes) +
                        " fnv=" + hex(fnv1a(expected.data(), expected.size())));
}

TEST_F(VhostUserGuestTest, HostAndGuestExchangeDataOverHybridVsock) {
  REQUIRE_VHOST_USER_GUEST();
  add_vsock();

  // The guest's connections to the host land on <uds_path>_<port>.
  std::string host_listener_path = vsock_uds + "_" + std::to_string(kHostPort);
  common::UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr = unix_address(host_listener_path);
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0)
      << std::strerror(errno);
  ASSERT_EQ(::listen(listener.get(), 4), 0);

  QemuGuest guest(guest_config("vsock-echo,vsock-connect"));
  ASSERT_TRUE(guest.wait_for_line("^EMBER-VU vsock-listening port=5000$", kBootTimeout))
      << guest.describe() << backend_log();

  // Host → guest: 2 MiB of random bytes, echoed back while still sending.
  std::vector<uint8_t> data(2 << 20);
  std::mt19937_64 random(42);
  for (auto& b : data) b = static_cast<uint8_t>(random());
  std::string answer;
  common::UniqueFd conn = hybrid_connect(vsock_uds, kEchoPort, answer);
  ASSERT_TRUE(conn) << "hybrid vsock CONNECT failed: " << answer << "\n"
                    << guest.describe() << backend_log();
  EXPECT_TRUE(std::regex_match(answer, std::regex("OK [0-9]+"))) << answer;
  bool sent = false;
  std::thread writer([&] {
    sent = write_all(conn.get(), data.data(), data.size());
    ::shutdown(conn.get(), SHUT_WR);
  });
  std::vector<uint8_t> echoed = read_until_eof(conn.get(), kStepTimeout);
  writer.join();
  EXPECT_TRUE(sent);
  ASSERT_EQ(echoed.size(), data.size()) << guest.describe() << backend_log();
  EXPECT_TRUE(echoed == data) << "echoed bytes differ";
  ASSERT_TRUE(guest.wait_for_line(
      "^EMBER-VU vsock-echoed bytes=" + std::to_string(data.size()) + "$", kStepTimeout))
      << guest.describe();

  // Guest → host: the guest connects to CID 2 port 5001 and sends its stream.
  ASSERT_TRUE(wait_fd(listener.get(), POLLIN, kStepTimeout)) << "the guest never connected\n"
                                                             << guest.describe() << backend_log();
  common::UniqueFd from_guest(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(from_guest);
  std::vector<uint8_t> got = read_until_eof(from_guest.get(), kStepTimeout);
  std::vector<uint8_t> expected = pattern(kGuestSendBytes);
  EXPECT_EQ(got.size(), expected.size());
  EXPECT_TRUE(got == expected) << "the guest's stream arrived altered";
  std::string verdict =
      "host got " + std::to_string(got.size()) + " bytes fnv=" + hex(fnv1a(got.data(), got.size()));
  verdict += "\n";
  ASSERT_TRUE(write_all(from_guest.get(), reinterpret_cast<const uint8_t*>(verdict.data()),
                        verdict.size()));
  from_guest.reset();
  ASSERT_TRUE(
      guest.wait_for_line("^EMBER-VU vsock-host-said=host got " + std::to_string(kGuestSendBytes) +
                              " bytes fnv=" + hex(fnv1a(expected.data(), expected.size())) + "$",
                          kStepTimeout))
      << guest.describe() << backend_log();
  expect_clean_exit(guest);
}

// `ctr task pause` under the QEMU hypervisor is QMP `stop`: QEMU stops the
// vhost-user rings (GET_VRING_BASE) and restarts them on `cont`. The vsock
// connections the guest has (container stdio, the agent channel) must come
// through: ember's backend keeps the device state across the ring stop.
TEST_F(VhostUserGuestTest, VsockStreamSurvivesAVmPauseAndResume) {
  REQUIRE_VHOST_USER_GUEST();
  add_vsock();
  std::string qmp_path = (dir / "qmp.sock").string();
  qemu_args.insert(qemu_args.end(), {"-qmp", "unix:" + qmp_path + ",server=on,wait=off"});
  QemuGuest guest(guest_config("vsock-echo"));
  ASSERT_TRUE(guest.wait_for_line("^EMBER-VU vsock-listening port=5000$", kBootTimeout))
      << guest.describe() << backend_log();
  Qmp qmp;
  std::string error;
  ASSERT_TRUE(qmp.connect(qmp_path, error)) << error << "\n" << guest.describe();

  std::string answer;
  common::UniqueFd conn = hybrid_connect(vsock_uds, kEchoPort, answer);
  ASSERT_TRUE(conn) << "hybrid vsock CONNECT failed: " << answer << "\n"
                    << guest.describe() << backend_log();
  std::vector<uint8_t> data(768 * 1024);
  std::mt19937_64 random(7);
  for (auto& b : data) b = static_cast<uint8_t>(random());
  // Part 1 before the pause, echoed at once: the stream is established.
  const size_t part1 = 64 * 1024;
  ASSERT_TRUE(write_all(conn.get(), data.data(), part1));
  std::vector<uint8_t> echoed;
  uint8_t buf[65536];
  while (echoed.size() < part1 && wait_fd(conn.get(), POLLIN, kStepTimeout)) {
    ssize_t n = ::read(conn.get(), buf, sizeof buf);
    if (n <= 0) break;
    echoed.insert(echoed.end(), buf, buf + n);
  }
  ASSERT_EQ(echoed.size(), part1) << guest.describe() << backend_log();

  ASSERT_TRUE(qmp.execute("stop", error)) << error << "\n" << guest.describe();
  // `stop` returns once the VM stopped; QEMU has stopped the rings by then.
  EXPECT_NE(read_text(log_path).find("device rings stopped, device state kept"), std::string::npos)
      << "QEMU's stop did not stop the vhost-user rings\n"
      << backend_log();
  // Part 2 while the VM is paused: the host socket takes what fits and keeps
  // it; nothing is echoed by a paused guest.
  size_t sent = part1;
  while (sent < data.size()) {
    ssize_t n =
        ::send(conn.get(), data.data() + sent, data.size() - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  size_t written_while_paused = sent - part1;
  EXPECT_GT(written_while_paused, 0u);
  EXPECT_FALSE(wait_fd(conn.get(), POLLIN, 1s)) << "a paused guest echoed data";
  std::cout << "[ pause    ] " << written_while_paused
            << " bytes written into the vsock stream while the VM was paused\n";

  ASSERT_TRUE(qmp.execute("cont", error)) << error << "\n" << guest.describe();
  // Part 3 after the resume. The end of the stream only once everything came
  // back: on EOF the guest leaves its echo loop and powers off, and bytes
  // still queued in its vsock stack would go down with it.
  bool rest_sent = false;
  std::thread writer(
      [&] { rest_sent = write_all(conn.get(), data.data() + sent, data.size() - sent); });
  while (echoed.size() < data.size() && wait_fd(conn.get(), POLLIN, kStepTimeout)) {
    ssize_t n = ::read(conn.get(), buf, sizeof buf);
    if (n <= 0) break;
    echoed.insert(echoed.end(), buf, buf + n);
  }
  writer.join();
  EXPECT_TRUE(rest_sent);
  ASSERT_EQ(echoed.size(), data.size()) << guest.describe() << backend_log();
  EXPECT_TRUE(echoed == data) << "the stream came back altered";
  ::shutdown(conn.get(), SHUT_WR);
  EXPECT_TRUE(read_until_eof(conn.get(), kStepTimeout).empty());
  ASSERT_TRUE(guest.wait_for_line(
      "^EMBER-VU vsock-echoed bytes=" + std::to_string(data.size()) + "$", kStepTimeout))
      << guest.describe() << backend_log();
  std::string log = read_text(log_path);
  EXPECT_NE(log.find("device rings restarted"), std::string::npos) << backend_log();
  EXPECT_EQ(log.find("driver reset the device"), std::string::npos) << backend_log();
  expect_clean_exit(guest);
}

TEST_F(VhostUserGuestTest, GuestSeesCapacityChangeAfterBackingSwap) {
  REQUIRE_VHOST_USER_GUEST();
  EMBER_REQUIRE(have_e2fsprogs(), "mkfs.ext4/debugfs (e2fsprogs) not installed");
  make_image(image, "hello.txt", "the first backing file\n", 16 << 20);
  fs::path bigger = dir / "bigger.ext4";
  make_image(bigger, "second.txt", "the second backing file\n", 48 << 20);
  VhostUserBackend& blk = add_block(image);
  QemuGuest guest(guest_config("resize"));

  std::string before = std::to_string((16 << 20) / 512);
  ASSERT_TRUE(guest.wait_for_line("^EMBER-VU size=" + before + "$", kBootTimeout))
      << guest.describe() << backend_log();
  // PATCH /drives equivalent: the shim attaches a container rootfs this way.
  blk.update_block(vmm::DriveUpdate{"rootfs", bigger.string(), std::nullopt});

  std::string after = std::to_string((48 << 20) / 512);
  ASSERT_TRUE(guest.wait_for_line("^EMBER-VU resized size=" + after + "$", kStepTimeout))
      << guest.describe() << backend_log();
  EXPECT_TRUE(guest.wait_for_line("vda: detected capacity change from", 0s)) << guest.describe();
  ASSERT_TRUE(guest.wait_for_line("^EMBER-VU blk-read2=the second backing file$", kStepTimeout))
      << guest.describe() << backend_log();
  expect_clean_exit(guest);
}

TEST_F(VhostUserGuestTest, GuestReadsEntropyFromEmberRng) {
  REQUIRE_VHOST_USER_GUEST();
  add_rng();
  QemuGuest guest(guest_config("rng"));
  auto line = guest.wait_for_line("^EMBER-VU rng bytes=64 ", kBootTimeout);
  ASSERT_TRUE(line) << guest.describe() << backend_log();
  EXPECT_NE(line->find("current=virtio_rng"), std::string::npos) << *line;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(*line, m, std::regex("distinct=([0-9]+)")));
  // 64 uniform bytes have ~56 distinct values; a stuck source would have 1.
  EXPECT_GT(std::stoi(m[1].str()), 20) << *line;
  expect_clean_exit(guest);
}

TEST_F(VhostUserGuestTest, BackendsServeTheNextVmAfterQemuExits) {
  REQUIRE_VHOST_USER_GUEST();
  add_rng();
  add_vsock();
  for (int boot = 0; boot < 2; ++boot) {
    QemuGuest guest(guest_config("rng"));
    ASSERT_TRUE(guest.wait_for_line("^EMBER-VU rng bytes=64 ", kBootTimeout))
        << "boot " << boot << "\n"
        << guest.describe() << backend_log();
    expect_clean_exit(guest);
  }
  for (auto& b : backends) EXPECT_EQ(b->connection_count(), 2u) << b->name();
}

// The same, through the `ember-vmm vhost-user` command line: a separate
// process QEMU connects to. Its drive uses the Async (io_uring) engine, so
// the guest's ext4 reads and writes go through it.
TEST_F(VhostUserGuestTest, CommandLineBackendsServeARealGuest) {
  REQUIRE_VHOST_USER_GUEST();
  EMBER_REQUIRE(have_e2fsprogs(), "mkfs.ext4/debugfs (e2fsprogs) not installed");
  make_image(image, "hello.txt", "hello from the host\n", 32 << 20);
  std::string blk = (dir / "cli-blk.sock").string();
  std::string rng = (dir / "cli-rng.sock").string();
  common::UniqueFd log(
      ::open((dir / "cli.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  common::SpawnOptions options;
  options.argv = {EMBER_VMM_BIN,
                  "vhost-user",
                  "--socket",
                  blk,
                  "--device",
                  "blk,path=" + image.string() + ",id=rootfs,engine=async",
                  "--socket",
                  rng,
                  "--device",
                  "rng"};
  options.stdout_fd = log.get();
  options.stderr_fd = log.get();
  options.die_with_parent = true;
  common::ChildProcess backend = common::ChildProcess::spawn(options);
  for (int i = 0; i < 500 && !(fs::exists(blk) && fs::exists(rng)); ++i)
    std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(fs::exists(blk) && fs::exists(rng)) << read_text(dir / "cli.log");

  qemu_args = {"-chardev", "socket,id=blk,path=" + blk, "-device", "vhost-user-blk,chardev=blk",
               "-chardev", "socket,id=rng,path=" + rng, "-device", "vhost-user-rng,chardev=rng"};
  {
    QemuGuest guest(guest_config("blk-rw,rng"));
    ASSERT_TRUE(guest.wait_for_line("^EMBER-VU blk-read=hello from the host$", kBootTimeout))
        << guest.describe() << read_text(dir / "cli.log");
    ASSERT_TRUE(guest.wait_for_line("^EMBER-VU rng bytes=64 ", kStepTimeout)) << guest.describe();
    expect_clean_exit(guest);
  }
  EXPECT_EQ(read_text(dir / "cli.log").find("Async io engine is unavailable"), std::string::npos)
      << read_text(dir / "cli.log");
  backend.kill(SIGTERM);
  auto status = backend.wait_for(10000);
  ASSERT_TRUE(status) << "ember-vmm vhost-user ignored SIGTERM";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
      << common::describe_wait_status(*status);
  EXPECT_FALSE(fs::exists(blk)) << "socket left behind";
  EXPECT_EQ(read_file_from_ext4(image, "/from-guest.txt"),
            "written by the guest over vhost-user\n");
}

}  // namespace
}  // namespace ember::testing
