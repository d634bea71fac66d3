// ember-vhost-user-guest: PID 1 of the guest that tests ember's vhost-user
// backends under QEMU (tests/e2e/vhost_user_test.cc). The guest's own virtio
// drivers talk to ember's device code; this program does the guest side of
// each scenario and reports on the serial console, one marker per fact:
//
//   EMBER-GUEST-READY uptime=<s>                      always, first
//   EMBER-VU blk-read=<first line of /hello.txt>       blk-rw
//   EMBER-VU blk-wrote bytes=<n> fnv=<hex>             blk-rw (/from-guest.txt, /big.bin)
//   EMBER-VU vsock-listening port=<p>                  vsock-echo: host may connect now
//   EMBER-VU vsock-echoed bytes=<n>                    vsock-echo
//   EMBER-VU vsock-sent bytes=<n> fnv=<hex>            vsock-connect
//   EMBER-VU vsock-host-said=<line>                    vsock-connect
//   EMBER-VU size=<sectors>                            resize: waiting for a capacity change
//   EMBER-VU resized size=<sectors>                    resize
//   EMBER-VU blk-read2=<first line of /second.txt>     resize (the new backing file)
//   EMBER-VU rng bytes=<n> distinct=<k> current=<name> rng
//   EMBER-VU-ERROR <what>: <why>                       any failure; the run goes on
//   EMBER-VU-DONE errors=<n>                           always, last, then reboot
//
// `ember.vu=a,b,...` on the kernel command line picks the scenarios, run in
// order. PID 1 never exits (the kernel would panic and hide the report); it
// reboots, and QEMU runs with -no-reboot, so the VM ends.
//
// Built without ember-common or sanitizers: as PID 1 it starts before /proc
// exists. Its only dependency is the C++ standard library.
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/vm_sockets.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/e2e/guest/vhost_user_scenario.h"

namespace {

using namespace ember::testing::vhost_user_e2e;

class Failure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] void fail_errno(const std::string& what) {
  throw Failure(what + ": " + std::strerror(errno));
}

// One write(2) per line, so a line reaches the serial console in one piece.
void say(const std::string& line) {
  std::string out = line + "\n";
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::write(STDOUT_FILENO, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string read_file(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) fail_errno("open " + path);
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_errno("read " + path);
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

void write_all(int fd, const uint8_t* data, size_t len, const std::string& what) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::write(fd, data + done, len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail_errno(what);
    done += static_cast<size_t>(n);
  }
}

void write_file(const std::string& path, const std::vector<uint8_t>& data) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (fd.get() < 0) fail_errno("open " + path + " for writing");
  write_all(fd.get(), data.data(), data.size(), "write " + path);
  if (::fsync(fd.get()) < 0) fail_errno("fsync " + path);
}

void make_dir(const char* path) {
  if (::mkdir(path, 0755) < 0 && errno != EEXIST) fail_errno(std::string("mkdir ") + path);
}

void mount_fs(const char* source, const char* target, const char* type, unsigned long flags = 0,
              const char* data = nullptr) {
  make_dir(target);
  if (::mount(source, target, type, flags, data) < 0 && errno != EBUSY) {
    fail_errno(std::string("mount ") + source + " (" + type + ") on " + target);
  }
}

void unmount(const char* target) {
  if (::umount(target) < 0) fail_errno(std::string("umount ") + target);
}

double uptime() {
  timespec ts{};
  ::clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

void sleep_ms(long ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1000000};
  while (::nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

uint64_t disk_sectors() { return std::stoull(first_line(read_file("/sys/block/vda/size"))); }

// --- scenarios ----------------------------------------------------------------

// ext4 on ember-blk: read what the host put there, leave files the host reads
// back after shutdown.
void blk_rw() {
  mount_fs("/dev/vda", "/mnt", "ext4");
  say("EMBER-VU blk-read=" + first_line(read_file("/mnt/hello.txt")));
  std::string note = "written by the guest over vhost-user\n";
  write_file("/mnt/from-guest.txt", std::vector<uint8_t>(note.begin(), note.end()));
  std::vector<uint8_t> big = pattern(kBigFileBytes);
  write_file("/mnt/big.bin", big);
  unmount("/mnt");
  say("EMBER-VU blk-wrote bytes=" + std::to_string(big.size()) +
      " fnv=" + hex(fnv1a(big.data(), big.size())));
}

// The host connects through the hybrid vsock socket (CONNECT <port>); echo
// everything back until it shuts its side down.
void vsock_echo() {
  Fd listener(::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (listener.get() < 0) fail_errno("vsock socket");
  sockaddr_vm addr{};
  addr.svm_family = AF_VSOCK;
  addr.svm_cid = VMADDR_CID_ANY;
  addr.svm_port = kEchoPort;
  if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0)
    fail_errno("vsock bind");
  if (::listen(listener.get(), 1) < 0) fail_errno("vsock listen");
  say("EMBER-VU vsock-listening port=" + std::to_string(kEchoPort));
  Fd conn(::accept(listener.get(), nullptr, nullptr));
  if (conn.get() < 0) fail_errno("vsock accept");
  std::vector<uint8_t> buf(64 * 1024);
  size_t total = 0;
  for (;;) {
    ssize_t n = ::read(conn.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_errno("vsock read");
    if (n == 0) break;
    write_all(conn.get(), buf.data(), static_cast<size_t>(n), "vsock echo write");
    total += static_cast<size_t>(n);
  }
  say("EMBER-VU vsock-echoed bytes=" + std::to_string(total));
}

// The guest connects to the host (CID 2), which ember routes to the unix
// socket <uds_path>_<port>; send a known stream, read the host's verdict.
void vsock_connect() {
  Fd sock(::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (sock.get() < 0) fail_errno("vsock socket");
  sockaddr_vm addr{};
  addr.svm_family = AF_VSOCK;
  addr.svm_cid = VMADDR_CID_HOST;
  addr.svm_port = kHostPort;
  int attempt = 0;
  while (::connect(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    // The host listener may not be up yet; the device resets such a connect.
    if (++attempt == 100) fail_errno("vsock connect to host port " + std::to_string(kHostPort));
    sleep_ms(100);
  }
  std::vector<uint8_t> data = pattern(kGuestSendBytes);
  write_all(sock.get(), data.data(), data.size(), "vsock write to host");
  if (::shutdown(sock.get(), SHUT_WR) < 0) fail_errno("vsock shutdown");
  say("EMBER-VU vsock-sent bytes=" + std::to_string(data.size()) +
      " fnv=" + hex(fnv1a(data.data(), data.size())));
  std::string reply;
  char buf[256];
  for (;;) {
    ssize_t n = ::read(sock.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_errno("vsock read from host");
    if (n == 0) break;
    reply.append(buf, static_cast<size_t>(n));
  }
  say("EMBER-VU vsock-host-said=" + first_line(reply));
}

// Waits for the host to swap the backing file for a bigger one, then mounts
// what the new file holds.
void resize() {
  uint64_t before = disk_sectors();
  say("EMBER-VU size=" + std::to_string(before));
  uint64_t now = before;
  for (int i = 0; i < 600 && now == before; ++i) {
    sleep_ms(100);
    now = disk_sectors();
  }
  if (now == before)
    throw Failure("capacity of vda stayed at " + std::to_string(before) + " sectors for 60 s");
  say("EMBER-VU resized size=" + std::to_string(now));
  // Nothing from the old file may linger in the page cache of vda.
  {
    Fd disk(::open("/dev/vda", O_RDONLY | O_CLOEXEC));
    if (disk.get() < 0) fail_errno("open /dev/vda");
    if (::ioctl(disk.get(), BLKFLSBUF, 0) < 0) fail_errno("BLKFLSBUF /dev/vda");
  }
  mount_fs("/dev/vda", "/mnt", "ext4");
  say("EMBER-VU blk-read2=" + first_line(read_file("/mnt/second.txt")));
  unmount("/mnt");
}

// virtio-rng is the kernel's hwrng: read from it directly.
void rng() {
  std::string current = first_line(read_file("/sys/class/misc/hw_random/rng_current"));
  Fd fd(::open("/dev/hwrng", O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) fail_errno("open /dev/hwrng");
  uint8_t buf[64];
  size_t got = 0;
  while (got < sizeof buf) {
    ssize_t n = ::read(fd.get(), buf + got, sizeof buf - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail_errno("read /dev/hwrng");
    got += static_cast<size_t>(n);
  }
  std::set<uint8_t> distinct(buf, buf + got);
  say("EMBER-VU rng bytes=" + std::to_string(got) + " distinct=" + std::to_string(distinct.size()) +
      " current=" + current);
}

struct Scenario {
  const char* name;
  void (*run)();
};

constexpr Scenario kScenarios[] = {
    {"blk-rw", blk_rw},
    {"vsock-echo", vsock_echo},
    {"vsock-connect", vsock_connect},
    {"resize", resize},
    {"rng", rng},
};

std::vector<std::string> chosen_scenarios(const std::string& cmdline) {
  std::vector<std::string> out;
  std::istringstream words(cmdline);
  std::string word;
  while (words >> word) {
    if (word.rfind("ember.vu=", 0) != 0) continue;
    std::istringstream list(word.substr(9));
    std::string name;
    while (std::getline(list, name, ',')) {
      if (!name.empty()) out.push_back(name);
    }
  }
  return out;
}

[[noreturn]] void power_off() {
  ::sync();
  ::reboot(RB_AUTOBOOT);
  say("EMBER-VU-ERROR reboot: " + std::string(std::strerror(errno)));
  for (;;) ::pause();
}

}  // namespace

int main() {
  int errors = 0;
  auto guarded = [&](const std::string& what, const std::function<void()>& step) {
    try {
      step();
    } catch (const std::exception& e) {
      say("EMBER-VU-ERROR " + what + ": " + e.what());
      ++errors;
    }
  };
  guarded("mount", [] {
    mount_fs("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC);
    mount_fs("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC);
    mount_fs("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
  });
  char ready[64];
  std::snprintf(ready, sizeof ready, "EMBER-GUEST-READY uptime=%.2f", uptime());
  say(ready);
  std::string cmdline;
  guarded("cmdline", [&] { cmdline = read_file("/proc/cmdline"); });
  for (const std::string& name : chosen_scenarios(cmdline)) {
    guarded(name, [&] {
      for (const Scenario& s : kScenarios) {
        if (name == s.name) return s.run();
      }
      throw Failure("unknown scenario in ember.vu=");
    });
  }
  say("EMBER-VU-DONE errors=" + std::to_string(errors));
  power_off();
}
