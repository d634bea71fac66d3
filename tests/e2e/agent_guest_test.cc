// ember-agent as PID 1 of a real Linux guest (ember's kernel +
// initramfs-agent.cpio) under QEMU TCG, reached over ember's vsock device
// (hybrid vsock, served to QEMU over vhost-user) and running real containers
// with crun from ember's block devices: the path the shim takes in
// production, minus the VMM.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "guest-agent/agent/client/agent_client.h"
#include "proto/ttrpc/status.h"
#include "tests/harness/command.h"
#include "tests/harness/disk_image.h"
#include "tests/harness/qemu_guest.h"
#include "tests/harness/require.h"
#include "tests/harness/temp_dir.h"
#include "vmm/devices/virtio/block/block_device.h"
#include "vmm/devices/virtio/vsock/vsock_device.h"
#include "vmm/vhost_user/vhost_user_backend.h"

namespace ember::agent {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ember::testing::QemuGuest;
using ember::testing::QemuGuestConfig;
using ember::testing::TempDir;
using nlohmann::json;
using vmm::vhost_user::VhostUserBackend;

// TCG on a loaded 2-core machine: generous limits that only catch a stuck guest.
constexpr auto kBootTimeout = 120s;
const ttrpc::CallOptions kSlow{.timeout = 120s, .metadata = {}};

fs::path agent_initrd() { return ember::testing::guest_image_dir() / "initramfs-agent.cpio"; }

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string read_to_eof(int fd, std::chrono::milliseconds timeout = 60s) {
  std::string out;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
  ADD_FAILURE() << "no EOF; got \"" << out << "\"";
  return out;
}

const fs::path& rootfs_dir() {
  static const fs::path dir = [] {
    fs::path out = fs::path(EMBER_BINARY_DIR) / "agent-rootfs";
    ember::testing::run_checked(
        {std::string(EMBER_SOURCE_DIR) + "/tests/agent-rootfs/build-rootfs.sh", out.string()});
    return out;
  }();
  return dir;
}

// A minimal OCI spec of the kind containerd writes; the agent adapts it.
json make_spec(const std::vector<std::string>& args) {
  json spec = json::parse(R"({
    "ociVersion": "1.0.2-dev",
    "process": {"terminal": false, "user": {"uid": 0, "gid": 0}, "cwd": "/",
                "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
                "capabilities": {"bounding": ["CAP_KILL", "CAP_SETUID", "CAP_SETGID"],
                                 "effective": ["CAP_KILL", "CAP_SETUID", "CAP_SETGID"],
                                 "permitted": ["CAP_KILL", "CAP_SETUID", "CAP_SETGID"]},
                "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
                "noNewPrivileges": true},
    "root": {"path": "rootfs"},
    "hostname": "in-guest",
    "mounts": [
      {"destination": "/proc", "type": "proc", "source": "proc"},
      {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
      {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
      {"destination": "/dev/shm", "type": "bind", "source": "/run/containerd/sandboxes/x/shm", "options": ["rbind"]},
      {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
      {"destination": "/etc/hosts", "type": "bind", "source": "/var/lib/containerd/x/hosts", "options": ["rbind", "ro"]}
    ],
    "linux": {
      "cgroupsPath": "/k8s.io/abc",
      "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
                     {"type": "network", "path": "/var/run/netns/cni-1234"}],
      "maskedPaths": ["/proc/kcore"],
      "readonlyPaths": ["/proc/sys"]
    }
  })");
  spec["process"]["args"] = args;
  return spec;
}

// The virtio-blk serial ember's block device reports (Firecracker's rule:
// decimal st_dev, st_rdev, st_ino of the backing file, at most 20 bytes).
std::string block_serial(const fs::path& image) {
  struct stat st {};
  EXPECT_EQ(::stat(image.c_str(), &st), 0);
  std::string id =
      std::to_string(st.st_dev) + std::to_string(st.st_rdev) + std::to_string(st.st_ino);
  return id.substr(0, 20);
}

class AgentGuestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EMBER_REQUIRE(ember::testing::have_qemu(), "qemu-system-x86_64 not installed");
    EMBER_REQUIRE(
        fs::exists(ember::testing::guest_image_dir() / "vmlinux") && fs::exists(agent_initrd()),
        "guest image missing in " + ember::testing::guest_image_dir().string() +
            " (vmlinux, initramfs-agent.cpio): build the guest-image target");
    EMBER_REQUIRE(ember::testing::have_e2fsprogs(), "e2fsprogs not installed");
    EMBER_REQUIRE(fs::exists("/bin/busybox"), "busybox-static not installed");
    rootfs_dir();
    vmm::LoggerConfig config;
    config.log_path = (dir_ / "backends.log").string();
    config.level = vmm::LogLevel::kInfo;
    logger_.configure(config);
  }

  void TearDown() override {
    // The health check's safety net must never fire on a healthy run.
    if (guest_) {
      EXPECT_TRUE(guest_->lines_matching("exit status lost").empty()) << describe();
    }
    client_.reset();
    guest_.reset();
    for (auto& b : backends_) b->stop();
  }

  fs::path copy_rootfs(const std::string& name) {
    fs::path image = dir_ / name;
    fs::copy_file(rootfs_dir() / "rootfs.ext4", image, fs::copy_options::overwrite_existing);
    return image;
  }

  void add_backend(const std::string& name, std::unique_ptr<vmm::virtio::VirtioDevice> device,
                   const std::string& qemu_device) {
    std::string socket = (dir_ / (name + ".sock")).string();
    backends_.push_back(
        std::make_unique<VhostUserBackend>(socket, std::move(device), logger_, metrics_, name));
    backends_.back()->start();
    qemu_args_.insert(qemu_args_.end(), {"-chardev", "socket,id=" + name + ",path=" + socket,
                                         "-device", qemu_device + ",chardev=" + name});
  }
  VhostUserBackend& add_block(const std::string& name, const fs::path& image) {
    vmm::DriveConfig drive;
    drive.drive_id = name;
    drive.path_on_host = image.string();
    add_backend(name, std::make_unique<vmm::virtio::BlockDevice>(drive, logger_, metrics_),
                "vhost-user-blk");
    return *backends_.back();
  }

  void boot() {
    add_backend("vhost-vsock",
                std::make_unique<vmm::virtio::VsockDevice>(vmm::VsockConfig{3, vsock_uds_}, logger_,
                                                           metrics_),
                "vhost-user-vsock-device");
    QemuGuestConfig config;
    config.kernel = ember::testing::guest_image_dir() / "vmlinux";
    config.initrd = agent_initrd();
    config.shared_memory = true;
    config.memory_mib = 256;
    // The agent's health check (lost exits, missed OOM notifications, memory
    // thrashing) often, so every test here exercises it.
    config.extra_cmdline = "ember.health_interval_ms=500";
    config.extra_args = qemu_args_;
    config.ready_marker = "ember-agent .* ready \\(PID 1\\)";
    config.console_log_path = dir_ / "console.log";
    config.timeout = 600s;
    guest_ = std::make_unique<QemuGuest>(config);
    ASSERT_TRUE(guest_->wait_for_line(config.ready_marker, kBootTimeout)) << describe();
    std::cout << "[ boot     ] " << guest_->boot_time()->count() << " ms to agent ready\n";
    try {
      client_ = std::make_unique<AgentClient>(AgentClient::hybrid_vsock_dialer(vsock_uds_, 1024));
    } catch (const std::exception& e) {
      FAIL() << e.what() << "\n" << describe();
    }
  }

  std::string describe() const {
    return (guest_ ? guest_->describe() : std::string()) + "\n--- backends ---\n" +
           read_text(dir_ / "backends.log");
  }

  // The agent's own account (its log ring buffer), for failure messages and
  // for tests that look for what it noticed.
  std::string agent_log() {
    try {
      v1::ReadLogRequest req;
      req.set_max_bytes(256 * 1024);
      return api().ReadLog(req, {.timeout = 20s, .metadata = {}}).data();
    } catch (const std::exception& e) {
      return std::string("(ReadLog failed: ") + e.what() + ")";
    }
  }

  // What a container is doing, for failure messages: its memory figures and
  // processes as the agent sees them.
  std::string container_report(const std::string& id) {
    std::ostringstream out;
    try {
      const ttrpc::CallOptions quick{.timeout = 20s, .metadata = {}};
      v1::ContainerStatsRequest sr;
      sr.set_container_id(id);
      auto st = api().ContainerStats(sr, quick);
      out << "container " << id << ": memory " << st.memory().usage() << " of "
          << st.memory().limit() << " bytes, limit hit " << st.memory().failcnt()
          << " times, OOM kills " << st.memory().oom_kills();
      for (const char* key : {"anon", "file", "workingset_refault_file", "pgmajfault"}) {
        auto it = st.memory().stat().find(key);
        if (it != st.memory().stat().end()) out << ", " << key << " " << it->second;
      }
      v1::ListProcessesRequest lr;
      lr.set_container_id(id);
      auto listed = api().ListProcesses(lr, quick);
      out << "; pids:";
      for (const auto& p : listed.processes()) out << " " << p.pid();
    } catch (const std::exception& e) {
      out << "(container " << id << ": " << e.what() << ")";
    }
    return out.str();
  }

  v1::AgentClient& api() { return client_->api(); }

  void create(const std::string& id, const json& spec, const v1::Filesystem& fs, bool out) {
    v1::CreateContainerRequest req;
    req.set_container_id(id);
    req.set_spec_json(spec.dump());
    *req.mutable_rootfs()->mutable_upper() = fs;
    req.mutable_stdio()->set_stdout(out);
    req.mutable_stdio()->set_stderr(out);
    api().CreateContainer(req, kSlow);
  }
  uint32_t start(const std::string& id, const std::string& exec_id = "") {
    v1::StartProcessRequest req;
    req.set_container_id(id);
    req.set_exec_id(exec_id);
    return api().StartProcess(req, kSlow).pid();
  }
  // A wait that fails says why: the container's state, the agent's log and
  // the guest console (kernel messages: OOM kills, hung tasks) go with it.
  v1::WaitProcessResponse wait(const std::string& id, const std::string& exec_id = "") {
    v1::WaitProcessRequest req;
    req.set_container_id(id);
    req.set_exec_id(exec_id);
    try {
      return api().WaitProcess(req, kSlow);
    } catch (const std::exception& e) {
      ADD_FAILURE() << e.what() << "\n"
                    << container_report(id) << "\n--- agent log ---\n"
                    << agent_log() << "\n"
                    << describe();
      throw;
    }
  }
  void remove(const std::string& id, const std::string& exec_id = "") {
    v1::DeleteProcessRequest req;
    req.set_container_id(id);
    req.set_exec_id(exec_id);
    api().DeleteProcess(req, kSlow);
  }
  v1::Filesystem device(const std::string& path) {
    v1::Filesystem f;
    f.set_device(path);
    f.set_fstype("ext4");
    return f;
  }

  TempDir dir_{"ember-agent-e2e"};
  std::string vsock_uds_ =
      (dir_ / "agent-vsock.sock").string();  // hybrid vsock (VsockConfig.uds_path)
  vmm::Logger logger_;
  vmm::Metrics metrics_;
  std::vector<std::unique_ptr<VhostUserBackend>> backends_;
  std::vector<std::string> qemu_args_;
  std::unique_ptr<QemuGuest> guest_;
  std::unique_ptr<AgentClient> client_;
};

TEST_F(AgentGuestTest, RunsAContainerFromABlockDeviceAndShutsTheGuestDown) {
  fs::path image = copy_rootfs("rootfs.ext4");
  add_block("rootfs", image);
  boot();
  auto info = api().GuestInfo({}, kSlow);
  EXPECT_TRUE(info.pid1());
  EXPECT_EQ(info.cgroup_version(), 2u);
  EXPECT_GT(info.memory_total_bytes(), 100u << 20);
  std::cout << "[ guest    ] kernel " << info.kernel_release() << ", "
            << info.memory_available_bytes() / 1024 << " KiB available of "
            << info.memory_total_bytes() / 1024 << " KiB, agent RSS "
            << info.agent_rss_bytes() / 1024 << " KiB (anonymous "
            << info.agent_anonymous_bytes() / 1024 << " KiB)\n";
  EXPECT_GT(info.agent_rss_bytes(), 0u);

  // By serial: what the shim knows about a drive slot without guessing vdX.
  v1::Filesystem by_serial;
  by_serial.set_serial(block_serial(image));
  by_serial.set_fstype("ext4");
  auto t0 = std::chrono::steady_clock::now();
  create("c1",
         make_spec({"sh", "-c",
                    "echo hello from the guest; hostname; cat /etc/hostname; echo err >&2; "
                    "echo persisted > /from-container; exit 3"}),
         by_serial, true);
  auto out = client_->open_stream("c1", "", StreamKind::kStdout);
  auto err = client_->open_stream("c1", "", StreamKind::kStderr);
  start("c1");
  EXPECT_EQ(read_to_eof(out.get()), "hello from the guest\nin-guest\nember-test\n");
  EXPECT_EQ(read_to_eof(err.get()), "err\n");
  EXPECT_EQ(wait("c1").exit_status(), 3u);
  auto t1 = std::chrono::steady_clock::now();
  remove("c1");
  std::cout << "[ timing   ] create+start+run+exit "
            << std::chrono::duration_cast<std::chrono::milliseconds>(t1 - t0).count()
            << " ms, delete "
            << std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - t1)
                   .count()
            << " ms (TCG)\n";
  v1::GuestInfoRequest again;
  auto after = api().GuestInfo(again, kSlow);
  std::cout << "[ agent    ] after a container: RSS " << after.agent_rss_bytes() / 1024
            << " KiB, anonymous " << after.agent_anonymous_bytes() / 1024 << " KiB\n";

  // A long-running container with an exec, stats from cgroup v2, kill.
  create("c2", make_spec({"sh", "-c", "while true; do sleep 1; done"}), device("/dev/vda"), false);
  start("c2");
  v1::ExecProcessRequest exec;
  exec.set_container_id("c2");
  exec.set_exec_id("e1");
  exec.set_process_json(make_spec({"sh", "-c",
                                   "cat /proc/self/cgroup; ls /from-container; "
                                   "echo oom_score_adj=$(cat /proc/self/oom_score_adj)"})["process"]
                            .dump());
  exec.mutable_stdio()->set_stdout(true);
  api().ExecProcess(exec, kSlow);
  auto exec_out = client_->open_stream("c2", "e1", StreamKind::kStdout);
  start("c2", "e1");
  std::string cgroup = read_to_eof(exec_out.get());
  EXPECT_NE(cgroup.find("0::/"), std::string::npos) << cgroup;
  EXPECT_NE(cgroup.find("/from-container"), std::string::npos)
      << "c1's write is on the disk: " << cgroup;
  EXPECT_NE(cgroup.find("oom_score_adj=0\n"), std::string::npos)
      << "an exec must not inherit the agent's -1000: " << cgroup;
  EXPECT_EQ(wait("c2", "e1").exit_status(), 0u);
  remove("c2", "e1");
  v1::ContainerStatsRequest stats_req;
  stats_req.set_container_id("c2");
  auto stats = api().ContainerStats(stats_req, kSlow);
  EXPECT_EQ(stats.cgroup_version(), 2u);
  EXPECT_GT(stats.cpu().usage_usec(), 0u);
  EXPECT_GT(stats.memory().usage(), 0u);
  EXPECT_GE(stats.pids().current(), 1u);
  v1::SignalProcessRequest kill;
  kill.set_container_id("c2");
  kill.set_signal(9);
  kill.set_all(true);
  api().SignalProcess(kill, kSlow);
  EXPECT_EQ(wait("c2").exit_status(), 137u);
  remove("c2");

  api().Shutdown({}, kSlow);
  auto status = guest_->wait_for_exit(120s);
  ASSERT_TRUE(status) << "guest did not go down after Shutdown\n" << describe();
  client_.reset();
  for (auto& b : backends_) b->stop();
  EXPECT_EQ(ember::testing::read_file_from_ext4(image, "/from-container"), "persisted\n");
}

// The allocation must OOM on anonymous memory alone. `head -c 128m /dev/zero
// | tail` (tail buffers everything) did so only one run in three here: at
// the limit, reclaim evicts the file pages of busybox itself, which head and
// tail fault back in from the virtio-blk rootfs, so every reclaim pass frees
// something, the memory cgroup never runs out of retries and the OOM killer
// never runs (the container thrashes at the limit until killed; see
// ContainerThrashingAtItsMemoryLimitIsReportedAndStillEndsWhenKilled). On the
// host the same pipeline OOMs at once only because busybox's page cache is
// charged to whoever read it first, not to the container. dd fills a 64 MiB
// buffer in one read(2) of /dev/zero: no page of its program is needed until
// that returns, reclaim soon has nothing left to evict, and the OOM killer
// runs within a second.
TEST_F(AgentGuestTest, OomKillInTheGuestIsReportedBeforeTheExit) {
  add_block("rootfs", copy_rootfs("rootfs.ext4"));
  boot();
  json spec = make_spec({"sh", "-c",
                         "cat /proc/self/oom_score_adj; "
                         "exec dd if=/dev/zero of=/dev/null bs=64M count=1"});
  spec["linux"]["resources"]["memory"] = {{"limit", 16 << 20}, {"swap", 16 << 20}};
  create("oom", spec, device("/dev/vda"), true);
  auto out = client_->open_stream("oom", "", StreamKind::kStdout);
  // Both streams: one asked for but never attached holds the exit for 10 s.
  auto err = client_->open_stream("oom", "", StreamKind::kStderr);
  auto t0 = std::chrono::steady_clock::now();
  start("oom");
  auto exit = wait("oom");
  std::cout << "[ timing   ] start to OOM-killed exit "
            << std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - t0)
                   .count()
            << " ms\n";
  EXPECT_TRUE(exit.oom_killed());
  EXPECT_EQ(exit.exit_status(), 137u) << "SIGKILL from the OOM killer";
  EXPECT_EQ(read_to_eof(out.get()), "0\n")
      << "the container's oom_score_adj: its own, not the agent's -1000";
  uint64_t after = 0, oom_seq = 0, exit_seq = 0;
  for (int i = 0; i < 20 && !exit_seq; ++i) {
    v1::WaitEventRequest req;
    req.set_after_sequence(after);
    req.set_timeout_ms(10000);
    auto ev = api().WaitEvent(req, kSlow);
    ASSERT_NE(ev.sequence(), 0u) << describe();
    after = ev.sequence();
    if (ev.has_oom() && !oom_seq) oom_seq = ev.sequence();
    if (ev.has_exit() && ev.exit().container_id() == "oom") exit_seq = ev.sequence();
  }
  ASSERT_NE(oom_seq, 0u);
  EXPECT_LT(oom_seq, exit_seq);
  // The kernel chose inside the container's cgroup (not the agent, not crun).
  auto kills = guest_->lines_matching("oom-kill:.*task_memcg=/ember/oom,task=dd");
  EXPECT_EQ(kills.size(), 1u) << describe();
  remove("oom");
}

// A container at its memory limit that the kernel does not OOM-kill: 11 MiB
// of tmpfs it cannot give back (no swap) and an 8 MiB file read over and over
// in the 5 MiB left, so every pass evicts the file and reads it back from the
// disk. Reclaim always frees something, so the OOM killer never runs and the
// container runs on: WaitProcess rightly waits, the agent says in its log
// what is going on, keeps answering, and a kill still ends the wait.
TEST_F(AgentGuestTest, ContainerThrashingAtItsMemoryLimitIsReportedAndStillEndsWhenKilled) {
  add_block("rootfs", copy_rootfs("rootfs.ext4"));
  boot();
  json spec = make_spec({"sh", "-c",
                         "head -c 8m /dev/zero > /big && sync && "
                         "head -c 11m /dev/zero > /dev/shm/hold && "
                         "while true; do cat /big > /dev/null; done"});
  spec["linux"]["resources"]["memory"] = {{"limit", 16 << 20}, {"swap", 16 << 20}};
  create("thrash", spec, device("/dev/vda"), false);
  start("thrash");
  auto waiting = std::async(std::launch::async, [this] {
    v1::WaitProcessRequest req;
    req.set_container_id("thrash");
    return api().WaitProcess(req, {.timeout = 300s, .metadata = {}});
  });

  std::string log;
  bool reported = false;
  for (int i = 0; i < 90 && !reported; ++i) {
    std::this_thread::sleep_for(1s);
    log = agent_log();
    reported = log.find("container thrash is thrashing at its memory limit") != std::string::npos;
  }
  ASSERT_TRUE(reported) << container_report("thrash") << "\n--- agent log ---\n"
                        << log << "\n"
                        << describe();
  auto line_start = log.rfind('\n', log.find("container thrash is thrashing"));
  std::cout << "[ thrash   ] agent: "
            << log.substr(line_start + 1, log.find('\n', line_start + 1) - line_start - 1)
            << "\n[ thrash   ] " << container_report("thrash") << "\n";
  EXPECT_EQ(waiting.wait_for(0s), std::future_status::timeout) << "it still runs";
  v1::ContainerStatsRequest stats;
  stats.set_container_id("thrash");
  EXPECT_EQ(api().ContainerStats(stats, kSlow).memory().oom_kills(), 0u)
      << "not a case for the OOM killer";

  v1::SignalProcessRequest kill;
  kill.set_container_id("thrash");
  kill.set_signal(9);
  kill.set_all(true);
  api().SignalProcess(kill, kSlow);
  ASSERT_EQ(waiting.wait_for(120s), std::future_status::ready)
      << container_report("thrash") << "\n--- agent log ---\n"
      << agent_log() << "\n"
      << describe();
  auto exit = waiting.get();
  EXPECT_EQ(exit.exit_status(), 137u);
  EXPECT_FALSE(exit.oom_killed());
  remove("thrash");
}

TEST_F(AgentGuestTest, ContainerOnAHotSwappedDriveSlotSeesTheNewDisk) {
  add_block("rootfs", copy_rootfs("rootfs.ext4"));
  // A spare slot, as the pod VM boots with: a small placeholder.
  fs::path placeholder = dir_ / "spare.img";
  ember::testing::make_raw_image(placeholder, 1 << 20);
  VhostUserBackend& spare = add_block("spare", placeholder);
  boot();

  for (const char* marker : {"first", "second"}) {
    fs::path root = dir_ / (std::string("root-") + marker);
    fs::copy(rootfs_dir() / "rootfs", root,
             fs::copy_options::recursive | fs::copy_options::copy_symlinks |
                 fs::copy_options::overwrite_existing);
    std::ofstream(root / "marker") << marker << "\n";
    fs::path image = dir_ / (std::string(marker) + ".ext4");
    ember::testing::make_ext4_image(image, root, 24 << 20);
    vmm::DriveUpdate update;
    update.drive_id = "spare";
    update.path_on_host = image.string();
    spare.update_block(update);
    v1::BlockDeviceChangedRequest changed;
    changed.set_device("/dev/vdb");
    changed.set_expected_size_bytes(fs::file_size(image));
    changed.set_timeout_ms(60000);
    auto resp = api().BlockDeviceChanged(changed, kSlow);
    EXPECT_EQ(resp.size_bytes(), fs::file_size(image));

    std::string id = std::string("hot-") + marker;
    create(id, make_spec({"cat", "/marker"}), device("/dev/vdb"), true);
    auto out = client_->open_stream(id, "", StreamKind::kStdout);
    start(id);
    EXPECT_EQ(read_to_eof(out.get()), std::string(marker) + "\n")
        << "stale blocks of the previous disk?";
    EXPECT_EQ(wait(id).exit_status(), 0u);
    remove(id);
  }
}

}  // namespace
}  // namespace ember::agent
