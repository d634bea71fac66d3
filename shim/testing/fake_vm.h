// Honest stand-ins for a VM and its agent, for TaskService tests without
// QEMU or KVM:
//
// * FakeAgent serves the real agent API (ember.agent.v1.Agent over ttrpc) and
//   the real stdio stream protocol on a real unix socket that speaks
//   Firecracker's hybrid-vsock handshake ("CONNECT 1024\n" -> "OK ...\n"), so
//   the shim's AgentClient, dialer and stream code run unchanged.
// * Its processes are scripted by their argv instead of running programs:
//     echo WORDS...    WORDS on stdout, exit 0
//     stderr WORDS...  WORDS on stderr, exit 0
//     exit N           exit N
//     cat              stdin to stdout until EOF, exit 0
//     sleep            until a signal: exit 128+signal
//     oom              an OOM event, then exit 137 (oom_killed)
// * It checks that a container's root disk is really in one of the VM's
//   drive slots (by the virtio-blk serial of the slot's current file), which
//   proves the slot swapping.
// * FakeHypervisor runs a FakeAgent in place of a guest; crash() makes the
//   "VM" die like a killed QEMU.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/agent.ttrpc.pb.h"
#include "proto/ttrpc/server.h"
#include "shim/hypervisor/hypervisor.h"
#include "vmm/common/unique_fd.h"

namespace ember::shim::testing {

class FakeAgent : public ember::agent::v1::AgentService {
 public:
  using v1Create = ember::agent::v1::CreateContainerRequest;
  // `drive_serials` returns the serials of the files currently in the slots.
  FakeAgent(std::string uds_path, std::function<std::vector<std::string>()> drive_serials);
  ~FakeAgent() override;
  void start();
  void stop();  // closes everything, as if the guest vanished

  // While frozen, every API call except the long waits blocks: a guest that
  // stopped answering.
  void set_frozen(bool frozen);

  // What the shim asked for (for assertions).
  std::vector<std::string> containers() const;
  std::string last_update_json() const;
  std::pair<uint32_t, uint32_t> last_resize() const;
  int block_changes() const;

  using Ctx = ::ember::ttrpc::Context;
  ember::agent::v1::CreateContainerResponse CreateContainer(Ctx&, const ember::agent::v1::CreateContainerRequest&) override;
  ember::agent::v1::ExecProcessResponse ExecProcess(Ctx&, const ember::agent::v1::ExecProcessRequest&) override;
  ember::agent::v1::StartProcessResponse StartProcess(Ctx&, const ember::agent::v1::StartProcessRequest&) override;
  ember::agent::v1::SignalProcessResponse SignalProcess(Ctx&, const ember::agent::v1::SignalProcessRequest&) override;
  ember::agent::v1::WaitProcessResponse WaitProcess(Ctx&, const ember::agent::v1::WaitProcessRequest&) override;
  ember::agent::v1::DeleteProcessResponse DeleteProcess(Ctx&, const ember::agent::v1::DeleteProcessRequest&) override;
  ember::agent::v1::ResizePtyResponse ResizePty(Ctx&, const ember::agent::v1::ResizePtyRequest&) override;
  ember::agent::v1::UpdateContainerResponse UpdateContainer(Ctx&, const ember::agent::v1::UpdateContainerRequest&) override;
  ember::agent::v1::ContainerStatsResponse ContainerStats(Ctx&, const ember::agent::v1::ContainerStatsRequest&) override;
  ember::agent::v1::ListProcessesResponse ListProcesses(Ctx&, const ember::agent::v1::ListProcessesRequest&) override;
  ember::agent::v1::WaitEventResponse WaitEvent(Ctx&, const ember::agent::v1::WaitEventRequest&) override;
  ember::agent::v1::PingResponse Ping(Ctx&, const ember::agent::v1::PingRequest&) override;
  ember::agent::v1::BlockDeviceChangedResponse BlockDeviceChanged(Ctx&, const ember::agent::v1::BlockDeviceChangedRequest&) override;

 private:
  struct Proc {
    std::string container_id, exec_id;
    std::vector<std::string> args;
    ember::agent::v1::StdioOptions stdio;
    uint32_t pid = 0;
    bool started = false;
    bool exited = false;
    bool oom = false;
    uint32_t exit_status = 0;
    int signal = 0;
    common::UniqueFd in, out, err;
    std::thread runner;
  };
  using ProcPtr = std::shared_ptr<Proc>;
  ProcPtr find(const std::string& c, const std::string& e);
  void accept_loop();
  void handle_connection(common::UniqueFd fd);
  void run(ProcPtr p);
  void finish(const ProcPtr& p, uint32_t status, bool oom);
  void gate();

  std::string uds_path_;
  std::function<std::vector<std::string>()> drive_serials_;
  common::UniqueFd listener_;
  std::unique_ptr<ttrpc::Server> server_;
  std::thread acceptor_;
  std::atomic<bool> stopping_{false};

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::pair<std::string, std::string>, ProcPtr> procs_;
  std::vector<std::string> containers_;
  std::deque<ember::agent::v1::WaitEventResponse> events_;
  uint64_t next_sequence_ = 1;
  uint32_t next_pid_ = 100;
  std::string last_update_;
  std::pair<uint32_t, uint32_t> last_resize_{0, 0};
  int block_changes_ = 0;
  bool frozen_ = false;
  std::vector<std::thread> connection_threads_;
};

class FakeHypervisor : public Hypervisor {
 public:
  explicit FakeHypervisor(ShimLog& log) : log_(log) {}
  ~FakeHypervisor() override;

  void start(const VmSpec& spec) override;
  std::string vsock_uds_path() const override { return uds_; }
  void pause() override;
  void resume() override;
  void update_drive(const std::string& drive_id, const std::string& path) override;
  void stop() override;
  void on_exit(std::function<void(const VmExitInfo&)> callback) override { on_exit_ = std::move(callback); }
  pid_t vmm_pid() const override { return 4242; }
  pid_t external_pid() const override { return 0; }
  std::string diagnostics() const override { return "\n(fake VM)"; }
  std::string backend_name() const override { return "fake"; }

  // The VM dies (like QEMU killed with SIGKILL).
  void crash();
  bool paused() const { return paused_.load(); }
  FakeAgent* agent() { return agent_.get(); }
  VmSpec spec() const;
  std::vector<std::string> drive_paths() const;

 private:
  void end(int code, const std::string& reason);

  ShimLog& log_;
  mutable std::mutex mutex_;
  VmSpec spec_;
  std::map<std::string, std::string> drives_;
  std::string uds_;
  std::unique_ptr<FakeAgent> agent_;
  std::function<void(const VmExitInfo&)> on_exit_;
  std::atomic<bool> paused_{false};
  std::atomic<bool> ended_{false};
};

}  // namespace ember::shim::testing
