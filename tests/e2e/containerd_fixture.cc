#include "tests/e2e/containerd_fixture.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "tests/harness/qemu_guest.h"
#include "vmm/common/error.h"
#include "vmm/common/unique_fd.h"

namespace ember::testing {

namespace fs = std::filesystem;

namespace {

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

std::string tail(const std::string& text, size_t max) { return text.size() <= max ? text : text.substr(text.size() - max); }

// Processes whose NUL-separated command line contains every needle.
std::vector<pid_t> find_processes(const std::vector<std::string>& needles) {
  std::vector<pid_t> out;
  DIR* proc = ::opendir("/proc");
  if (!proc) return out;
  while (dirent* e = ::readdir(proc)) {
    pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid <= 0 || pid == ::getpid()) continue;
    std::string cmdline = read_text(fs::path("/proc") / e->d_name / "cmdline");
    for (auto& c : cmdline)
      if (c == '\0') c = ' ';
    bool all = !cmdline.empty();
    for (const auto& n : needles) all = all && cmdline.find(n) != std::string::npos;
    // Zombies have an empty cmdline and are skipped above.
    if (all) out.push_back(pid);
  }
  ::closedir(proc);
  return out;
}

std::string sha256_hex(const std::string& data) {
  // sha256sum keeps the test free of a crypto library.
  auto r = run_command({"sh", "-c", "printf '%s' \"$0\" | sha256sum", data});
  return r.output.substr(0, 64);
}

}  // namespace

fs::path shim_binary_dir() { return fs::path(EMBER_BINARY_DIR) / "shim"; }

bool have_containerd() { return !find_program("containerd").empty() && !find_program("ctr").empty(); }

bool have_agent_image() {
  return fs::exists(guest_image_dir() / "vmlinux") && fs::exists(guest_image_dir() / "initramfs-agent.cpio");
}

bool running_as_root() { return ::geteuid() == 0; }

PrivateContainerd::PrivateContainerd(PrivateContainerdOptions options)
    : options_(std::move(options)), dir_("ember-ctrd") {
  if (options_.ember_kernel.empty()) options_.ember_kernel = (guest_image_dir() / "vmlinux").string();
  if (options_.ember_initrd.empty()) options_.ember_initrd = (guest_image_dir() / "initramfs-agent.cpio").string();
  fs::create_directories(dir() / "root");
  fs::create_directories(dir() / "state");
  std::ofstream config(dir() / "config.toml");
  config << "version = 2\n"
         << "root = \"" << (dir() / "root").string() << "\"\n"
         << "state = \"" << (dir() / "state").string() << "\"\n"
         << "disabled_plugins = [\"io.containerd.grpc.v1.cri\", \"io.containerd.snapshotter.v1.btrfs\",\n"
         << "  \"io.containerd.snapshotter.v1.zfs\", \"io.containerd.snapshotter.v1.devmapper\",\n"
         << "  \"io.containerd.snapshotter.v1.aufs\"]\n"
         << "[grpc]\n  address = \"" << address() << "\"\n"
         << "[ttrpc]\n  address = \"" << address() << ".ttrpc\"\n"
         << "[debug]\n  level = \"info\"\n"
         << "[plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"" << (dir() / "opt").string() << "\"\n";
  config.close();
  write_ember_config(options_.ember_config_extra);
  start();
}

void PrivateContainerd::write_ember_config(const std::string& extra) {
  // TCG on a loaded 2-core machine: generous boot timeout; small VMs.
  std::ofstream ember(ember_config());
  ember << "# written by tests/e2e/containerd_fixture.cc\n"
        << "[vm]\n"
        << "kernel = \"" << options_.ember_kernel << "\"\n"
        << "initrd = \"" << options_.ember_initrd << "\"\n"
        << "memory_mib = 256\n"
        << "boot_timeout_ms = 180000\n"
        << "[rootfs]\nslack_mib = 64\n"
        << "[shim]\n"
        << "log_level = \"debug\"\n"
        << "debug_log = \"" << shim_debug_log().string() << "\"\n"
        << "state_dir = \"" << ember_state_dir().string() << "\"\n"
        << "kvm_check = \"" << (fs::path(EMBER_BINARY_DIR) / "vmm/kvm_check/ember-kvm-check").string() << "\"\n";
  // Later sections replace keys: the parser rejects duplicates, so extra
  // lines must name keys not set above or whole new sections.
  ember << extra << "\n";
}

PrivateContainerd::~PrivateContainerd() {
  try {
    if (running()) remove_all_containers();
  } catch (...) {
  }
  stop();
  // Whatever the test left (it should have asserted nothing is), do not leak
  // processes or mounts into the next test.
  for (pid_t pid : shim_pids()) ::kill(pid, SIGKILL);
  for (pid_t pid : qemu_pids()) ::kill(pid, SIGKILL);
  std::ifstream mounts("/proc/self/mountinfo");
  std::string line;
  std::vector<std::string> points;
  while (std::getline(mounts, line)) {
    std::istringstream f(line);
    std::string a, b, c, d, point;
    f >> a >> b >> c >> d >> point;
    if (point.rfind(dir().string(), 0) == 0) points.push_back(point);
  }
  for (auto it = points.rbegin(); it != points.rend(); ++it) run_command({"umount", "-l", *it});
}

void PrivateContainerd::start() {
  common::UniqueFd log(::open(containerd_log().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  common::SpawnOptions options;
  options.argv = {"containerd", "--config", (dir() / "config.toml").string()};
  std::vector<std::string> env;
  env.push_back("PATH=" + shim_binary_dir().string() + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  env.push_back("HOME=/root");
  options.env = env;
  options.stdout_fd = log.get();
  options.stderr_fd = log.get();
  process_ = common::ChildProcess::spawn(options);
  for (int i = 0; i < 200; ++i) {
    if (ctr({"version"}, std::chrono::seconds(5)).ok()) return;
    if (!process_.running()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  throw common::Error("private containerd did not come up:\n" + tail(read_text(containerd_log()), 4000));
}

void PrivateContainerd::stop(bool kill) {
  if (!process_.running()) return;
  process_.kill(kill ? SIGKILL : SIGTERM);
  if (!process_.wait_for(15000)) {
    process_.kill(SIGKILL);
    process_.wait();
  }
}

std::string PrivateContainerd::ctr_command() const {
  return "ctr --address " + address() + " -n " + kNamespace;
}

CommandResult PrivateContainerd::ctr(const std::vector<std::string>& args, std::chrono::milliseconds timeout) const {
  std::vector<std::string> argv = {"ctr", "--address", address(), "-n", kNamespace};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, timeout);
}

CommandResult PrivateContainerd::shell(const std::string& script, std::chrono::milliseconds timeout) const {
  std::string expanded = script;
  for (size_t pos; (pos = expanded.find("{ctr}")) != std::string::npos;) expanded.replace(pos, 5, ctr_command());
  return run_command({"sh", "-c", expanded}, timeout);
}

void PrivateContainerd::import_busybox() {
  fs::path tar = dir() / "ember-busybox.tar";
  run_checked({"python3", (fs::path(EMBER_SOURCE_DIR) / "deploy/oci-image/build-oci-image.py").string(), "--out",
               tar.string()});
  auto r = ctr({"images", "import", tar.string()});
  if (!r.ok()) throw common::Error("ctr images import: " + r.output);
}

std::vector<std::string> PrivateContainerd::ember_run_args() const {
  return {"--runtime", kEmberRuntime, "--runtime-config-path", ember_config()};
}

void PrivateContainerd::remove_all_containers() {
  auto tasks = ctr({"tasks", "ls", "-q"}, std::chrono::seconds(30));
  std::istringstream ids(tasks.output);
  std::string id;
  while (std::getline(ids, id)) {
    if (id.empty()) continue;
    ctr({"tasks", "kill", "-s", "SIGKILL", id}, std::chrono::seconds(30));
    ctr({"tasks", "rm", "-f", id}, std::chrono::seconds(60));
  }
  auto containers = ctr({"containers", "ls", "-q"}, std::chrono::seconds(30));
  std::istringstream cids(containers.output);
  while (std::getline(cids, id)) {
    if (!id.empty()) ctr({"containers", "rm", id}, std::chrono::seconds(60));
  }
}

std::string PrivateContainerd::shim_socket_for(const std::string& group) const {
  return "/run/containerd/s/" + sha256_hex(address() + "/" + kNamespace + "/" + group);
}

std::vector<pid_t> PrivateContainerd::shim_pids() const {
  return find_processes({"containerd-shim-ember-v2", "-address " + address()});
}

std::vector<pid_t> PrivateContainerd::qemu_pids() const {
  return find_processes({"qemu-system", ember_state_dir().string()});
}

void PrivateContainerd::expect_clean(const std::vector<std::string>& ids) const {
  // Shims exit right after the last Shutdown; give them a moment.
  for (int i = 0; i < 100 && (!shim_pids().empty() || !qemu_pids().empty()); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(shim_pids().empty()) << "shim processes left\n" << describe();
  EXPECT_TRUE(qemu_pids().empty()) << "QEMU processes left\n" << describe();
  std::ifstream mounts("/proc/self/mountinfo");
  std::string line;
  while (std::getline(mounts, line)) {
    EXPECT_EQ(line.find(dir().string()), std::string::npos) << "mount left: " << line;
  }
  for (auto it = fs::recursive_directory_iterator(dir(), fs::directory_options::skip_permission_denied);
       it != fs::recursive_directory_iterator(); ++it) {
    EXPECT_NE(it->path().filename(), "ember-rootfs.ext4") << "image left: " << it->path();
  }
  if (fs::exists(ember_state_dir())) {
    for (const auto& entry : fs::directory_iterator(ember_state_dir())) {
      // kvm-check caches the KVM self-check's answer for this boot: not VM state.
      if (entry.path().filename() == "kvm-check") continue;
      ADD_FAILURE() << "VM state left: " << entry.path();
    }
  }
  for (const auto& id : ids) {
    EXPECT_FALSE(fs::exists(shim_socket_for(id))) << "shim socket left for " << id;
  }
}

std::string PrivateContainerd::describe() const {
  return "--- containerd log (tail) ---\n" + tail(read_text(containerd_log()), 3000) +
         "\n--- shim debug log (tail) ---\n" + tail(read_text(shim_debug_log()), 6000);
}

}  // namespace ember::testing
