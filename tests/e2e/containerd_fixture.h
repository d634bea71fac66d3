// A private containerd for end-to-end tests of containerd-shim-ember-v2
// (reference §8 "Test recipe"): its own root, state, gRPC and ttrpc sockets
// and config under a temporary directory, the CRI plugin off, the shim
// directory first on its PATH. It never touches a system containerd.
//
//   PrivateContainerd ctrd;                        // starts it
//   ctrd.import_busybox();                         // docker.io/library/ember-busybox:latest
//   auto r = ctrd.ctr({"run", "--rm", "--runtime", "io.containerd.ember.v2",
//                      "--runtime-config-path", ctrd.ember_config(), kBusybox, "t1", "true"});
//   ctrd.expect_clean();                           // no shim, VM, mount, image or socket left
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/harness/command.h"
#include "tests/harness/temp_dir.h"
#include "vmm/common/child_process.h"

namespace ember::testing {

inline constexpr const char* kBusyboxImage = "docker.io/library/ember-busybox:latest";
inline constexpr const char* kEmberRuntime = "io.containerd.ember.v2";
inline constexpr const char* kNamespace = "ember";

struct PrivateContainerdOptions {
  // Extra lines for the ember runtime config ([vm] keys go under [vm] etc.;
  // written after the defaults below, so they replace them).
  std::string ember_config_extra;
  std::string ember_kernel;   // default: EMBER_GUEST_DIR/vmlinux
  std::string ember_initrd;   // default: EMBER_GUEST_DIR/initramfs-agent.cpio
};

class PrivateContainerd {
 public:
  explicit PrivateContainerd(PrivateContainerdOptions options = {});
  ~PrivateContainerd();  // removes every task and container, stops containerd, removes the directory
  PrivateContainerd(const PrivateContainerd&) = delete;
  PrivateContainerd& operator=(const PrivateContainerd&) = delete;

  void start();
  // SIGTERM (or SIGKILL with `kill`), then wait; shims keep running.
  void stop(bool kill = false);
  void restart() { stop(); start(); }
  bool running() const { return process_.running(); }

  // `ctr --address <ours> -n ember <args>`.
  CommandResult ctr(const std::vector<std::string>& args,
                    std::chrono::milliseconds timeout = std::chrono::seconds(180)) const;
  // Through `sh -c`, for pipes and redirections; `{ctr}` in `script` is ctr with our address and namespace.
  CommandResult shell(const std::string& script, std::chrono::milliseconds timeout = std::chrono::seconds(180)) const;
  std::string ctr_command() const;

  // The offline busybox image (deploy/oci-image/build-oci-image.py), imported once.
  void import_busybox();
  // `ctr run` arguments selecting the ember runtime and its config.
  std::vector<std::string> ember_run_args() const;

  // Removes every task and container of our namespace.
  void remove_all_containers();
  // Asserts (gtest) that nothing of ember is left: no shim process or QEMU of
  // ours, no mount under our directory, no root image, no shim socket for
  // `ids`, an empty ember state directory.
  void expect_clean(const std::vector<std::string>& ids = {}) const;

  const std::filesystem::path& dir() const { return dir_.path(); }
  std::string address() const { return (dir() / "containerd.sock").string(); }
  std::string ember_config() const { return (dir() / "ember.toml").string(); }
  std::filesystem::path ember_state_dir() const { return dir() / "ember-state"; }
  std::filesystem::path shim_debug_log() const { return dir() / "shim-debug.log"; }
  std::filesystem::path containerd_log() const { return dir() / "containerd.log"; }
  std::string shim_socket_for(const std::string& group) const;
  // Writes the ember runtime config again with different extra lines.
  void write_ember_config(const std::string& extra);

  // Pids of our shim daemons and of QEMU processes of our VMs.
  std::vector<pid_t> shim_pids() const;
  std::vector<pid_t> qemu_pids() const;
  std::string describe() const;  // containerd log tail + shim log tail, for failures

 private:
  PrivateContainerdOptions options_;
  TempDir dir_;
  common::ChildProcess process_;
};

// Paths the tests need.
std::filesystem::path shim_binary_dir();  // where containerd-shim-ember-v2 was built
bool have_containerd();
bool have_agent_image();
bool running_as_root();

}  // namespace ember::testing
