// The shim's `ember` backend (shim/hypervisor/ember_hypervisor.h): ember's
// VMM core in-process, driven through the Hypervisor interface the
// TaskService uses. A Linux guest needs a KVM that runs one (not the software
// /dev/kvm of the development machines), so these tests boot payload guests
// (tests/payloads): they prove the backend's plumbing (boot, drive slots and
// their swap, vsock socket, pause/resume, stop, exit reporting), not a
// container run.
#include <gtest/gtest.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "shim/hypervisor/ember_hypervisor.h"
#include "tests/harness/require.h"
#include "tests/harness/temp_dir.h"
#include "tests/integration/payload_runner.h"

namespace ember::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

struct ExitWatch {
  std::mutex mutex;
  std::condition_variable cv;
  std::optional<shim::VmExitInfo> exit;
  int calls = 0;
  void operator()(const shim::VmExitInfo& info) {
    std::lock_guard lock(mutex);
    exit = info;
    ++calls;
    cv.notify_all();
  }
  bool wait(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, timeout, [&] { return exit.has_value(); });
  }
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream b;
  b << in.rdbuf();
  return b.str();
}

shim::VmSpec payload_spec(const TempDir& dir, const std::string& payload) {
  shim::VmSpec spec;
  spec.name = "payload";
  spec.kernel = payload_path(payload).string();
  spec.vcpus = 1;
  spec.memory_mib = 128;
  spec.vm_dir = dir.path().string();
  for (int i = 0; i < 2; ++i) {
    std::string path = dir / ("slot" + std::to_string(i) + ".img");
    std::ofstream(path) << std::string(1 << 20, '\0');
    spec.drives.push_back({"slot" + std::to_string(i), path, false});
  }
  return spec;
}

TEST(ShimEmberBackend, BootsAPayloadAndReportsItsExit) {
  EMBER_REQUIRE_KVM();
  TempDir dir("shim-ember");
  ExitWatch watch;
  shim::ShimLog log;
  shim::EmberHypervisor vm(log);
  vm.on_exit(std::ref(watch));
  vm.start(payload_spec(dir, "hello"));
  EXPECT_EQ(vm.vmm_pid(), ::getpid());  // in-process
  EXPECT_EQ(vm.external_pid(), 0);
  ASSERT_TRUE(watch.wait(30s)) << vm.diagnostics();
  EXPECT_EQ(watch.exit->code, 0) << watch.exit->reason;
  EXPECT_NE(slurp(dir / "console.log").find("hello from an ember payload"), std::string::npos) << vm.diagnostics();
  vm.stop();
  EXPECT_EQ(watch.calls, 1);
}

TEST(ShimEmberBackend, SwapsADriveSlotPausesAndStops) {
  EMBER_REQUIRE_KVM();
  TempDir dir("shim-ember");
  ExitWatch watch;
  shim::ShimLog log;
  shim::EmberHypervisor vm(log);
  vm.on_exit(std::ref(watch));
  vm.start(payload_spec(dir, "spin"));
  EXPECT_TRUE(fs::exists(vm.vsock_uds_path())) << "hybrid vsock socket for the agent";
  std::string other = dir / "rootfs.img";
  std::ofstream(other) << std::string(2 << 20, '\0');
  vm.update_drive("slot1", other);
  EXPECT_THROW(vm.update_drive("slot9", other), common::Error);
  vm.pause();
  vm.resume();
  EXPECT_FALSE(watch.wait(200ms)) << "the spinning guest is still running";
  vm.stop();
  ASSERT_TRUE(watch.wait(10s));
  EXPECT_EQ(watch.exit->code, 0);
  EXPECT_EQ(watch.exit->reason, "stopped by the shim");
  EXPECT_FALSE(fs::exists(vm.vsock_uds_path()));
}

TEST(ShimEmberBackend, AMissingKernelIsAnErrorNamingIt) {
  EMBER_REQUIRE_KVM();
  TempDir dir("shim-ember");
  shim::ShimLog log;
  shim::EmberHypervisor vm(log);
  auto spec = payload_spec(dir, "hello");
  spec.kernel = "/nonexistent/vmlinux";
  try {
    vm.start(spec);
    FAIL() << "no error";
  } catch (const common::Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/vmlinux"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ember::testing
