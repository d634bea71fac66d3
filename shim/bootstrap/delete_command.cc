#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <filesystem>
#include <iostream>

#include "containerd/task/v2/shim.pb.h"
#include "containerd/task/v2/shim.ttrpc.pb.h"
#include "proto/ttrpc/client.h"
#include "proto/ttrpc/socket.h"
#include "shim/bootstrap/commands.h"
#include "shim/bootstrap/shim_address.h"
#include "shim/log/shim_log.h"
#include "shim/rootfs/rootfs.h"
#include "shim/task/state_file.h"
#include "vmm/common/error.h"

namespace ember::shim {

namespace task = containerd::task::v2;

namespace {

// The shim still runs (containerd gave up on it, e.g. after a restart that
// took too long): ask it to drop the container the normal way.
void delete_through_shim(const std::string& socket, const std::string& id) {
  ttrpc::Client client(ttrpc::dial_unix(socket));
  task::TaskClient tasks(client);
  ttrpc::CallOptions quick;
  quick.timeout = std::chrono::seconds(5);
  try {
    task::KillRequest kill;
    kill.set_id(id);
    kill.set_signal(SIGKILL);
    kill.set_all(true);
    tasks.Kill(kill, quick);
  } catch (const std::exception&) {
  }
  ttrpc::CallOptions slow;
  slow.timeout = std::chrono::seconds(20);
  try {
    task::WaitRequest wait;
    wait.set_id(id);
    tasks.Wait(wait, slow);
  } catch (const std::exception&) {
  }
  try {
    task::DeleteRequest del;
    del.set_id(id);
    tasks.Delete(del, slow);
  } catch (const std::exception&) {
  }
  try {
    task::ShutdownRequest shutdown;
    shutdown.set_id(id);
    tasks.Shutdown(shutdown, quick);
  } catch (const std::exception&) {
  }
}

void kill_vmm(const ContainerState& state, ShimLog& log) {
  if (state.vmm_pid <= 0 || state.vmm_start_time == 0) return;
  // Only the process we recorded: a recycled pid has another start time.
  if (process_start_time(state.vmm_pid) != state.vmm_start_time) return;
  ::kill(state.vmm_pid, SIGKILL);
  for (int i = 0; i < 100 && process_start_time(state.vmm_pid) == state.vmm_start_time; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  log.warn("killed the VMM of a dead shim", {{"pid", state.vmm_pid}, {"id", state.id}});
}

}  // namespace

int run_delete(const ShimFlags& flags) {
  ShimLog log;
  log.add_sink(common::UniqueFd(::dup(STDERR_FILENO)));
  log.set_level(LogLevel::kWarn);
  std::string bundle = flags.bundle;
  if (bundle.empty()) {
    char buf[PATH_MAX];
    if (::getcwd(buf, sizeof buf)) bundle = buf;
  }
  uint32_t pid = 0;
  try {
    std::optional<ContainerState> state = read_container_state(bundle);
    if (state) pid = static_cast<uint32_t>(state->vmm_pid);
    std::string socket = parse_address(read_address_file(bundle));
    if (socket_accepts(socket)) {
      if (state) delete_through_shim(socket, flags.id);
    } else {
      if (state) {
        kill_vmm(*state, log);
        std::error_code ec;
        if (!state->vm_dir.empty()) std::filesystem::remove_all(state->vm_dir, ec);
      }
      // The dead shim's socket (pod shims share it: only while nothing listens).
      if (!socket.empty() && socket.rfind("/run/containerd/s/", 0) == 0) ::unlink(socket.c_str());
    }
    cleanup_rootfs(bundle, state && state->image_owned ? state->image : "", log);
    remove_container_state(bundle);
  } catch (const std::exception& e) {
    log.warn("delete cleanup", {{"id", flags.id}, {"error", e.what()}});
  }
  task::DeleteResponse reply;
  reply.set_pid(pid);
  reply.set_exit_status(128 + SIGKILL);
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  reply.mutable_exited_at()->set_seconds(ns / 1000000000);
  reply.mutable_exited_at()->set_nanos(static_cast<int32_t>(ns % 1000000000));
  std::string out = reply.SerializeAsString();
  std::cout.write(out.data(), static_cast<std::streamsize>(out.size()));
  std::cout.flush();
  return 0;
}

}  // namespace ember::shim
