// containerd's Task API (`containerd.task.v2.Task`, served under the v3 name
// too) for the containers of one pod, all in one microVM (reference §3).
//
// Each RPC validates, does one thing and publishes one event, as containerd's
// runc shim does. The VM is booted by the first Create (Sandbox); every
// process call becomes an agent call over vsock. Process state lives here:
// State and Connect answer from it and never wait for the guest.
//
// Exits: a waiter thread per process blocks in the agent's WaitProcess (the
// agent answers only after the process's output was drained), waits for the
// host-side copy to finish, closes the client's stdio, records the exit and
// publishes TaskExit — after TaskStart/TaskExecStarted and TaskOOM. When the
// VM dies, every process still alive exits with status 255.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "containerd/task/v2/shim.ttrpc.pb.h"
#include "shim/config/runtime_config.h"
#include "shim/events/event_publisher.h"
#include "shim/hypervisor/hypervisor.h"
#include "shim/io/process_io.h"
#include "shim/log/shim_log.h"
#include "shim/rootfs/rootfs.h"
#include "shim/task/sandbox.h"

namespace ember::shim {

// Exit status of a process whose VM went away (containerd's own fallback for
// a task it lost is 255 as well).
inline constexpr uint32_t kVmLostExitStatus = 255;

using HypervisorFactory = std::function<std::unique_ptr<Hypervisor>(BackendKind backend, ShimLog& log)>;

struct TaskServiceOptions {
  std::string ns;                  // -namespace
  std::string containerd_address;  // -address; names the VM directory
  std::string system_config_path = "/etc/ember/config.toml";
  // Builds the backend; empty: the real ones (qemu, ember).
  HypervisorFactory make_hypervisor;
  // Whether KVM can run a Linux guest here (picks backend/accel "auto");
  // empty: run ember-kvm-check.
  std::function<bool(const RuntimeConfig&)> kvm_runs_linux;
  // Shutdown found no container left: the daemon should exit.
  std::function<void()> on_shutdown;
  // How long an exited process's output may take to reach the client.
  std::chrono::milliseconds output_drain_timeout{10000};
};

class TaskService : public containerd::task::v2::TaskService {
 public:
  TaskService(TaskServiceOptions options, EventSink& events, ShimLog& log);
  ~TaskService() override;

  using Ctx = ::ember::ttrpc::Context;
  using Empty = ::google::protobuf::Empty;

  containerd::task::v2::StateResponse State(Ctx&, const containerd::task::v2::StateRequest&) override;
  containerd::task::v2::CreateTaskResponse Create(Ctx&, const containerd::task::v2::CreateTaskRequest&) override;
  containerd::task::v2::StartResponse Start(Ctx&, const containerd::task::v2::StartRequest&) override;
  containerd::task::v2::DeleteResponse Delete(Ctx&, const containerd::task::v2::DeleteRequest&) override;
  containerd::task::v2::PidsResponse Pids(Ctx&, const containerd::task::v2::PidsRequest&) override;
  Empty Pause(Ctx&, const containerd::task::v2::PauseRequest&) override;
  Empty Resume(Ctx&, const containerd::task::v2::ResumeRequest&) override;
  Empty Checkpoint(Ctx&, const containerd::task::v2::CheckpointTaskRequest&) override;
  Empty Kill(Ctx&, const containerd::task::v2::KillRequest&) override;
  Empty Exec(Ctx&, const containerd::task::v2::ExecProcessRequest&) override;
  Empty ResizePty(Ctx&, const containerd::task::v2::ResizePtyRequest&) override;
  Empty CloseIO(Ctx&, const containerd::task::v2::CloseIORequest&) override;
  Empty Update(Ctx&, const containerd::task::v2::UpdateTaskRequest&) override;
  containerd::task::v2::WaitResponse Wait(Ctx&, const containerd::task::v2::WaitRequest&) override;
  containerd::task::v2::StatsResponse Stats(Ctx&, const containerd::task::v2::StatsRequest&) override;
  containerd::task::v2::ConnectResponse Connect(Ctx&, const containerd::task::v2::ConnectRequest&) override;
  Empty Shutdown(Ctx&, const containerd::task::v2::ShutdownRequest&) override;

  // Stops the VM and every thread (the daemon is exiting). Idempotent.
  void shutdown();
  size_t container_count() const;
  // Containers plus creations in progress.
  size_t busy_count() const;

 private:
  enum class StartPhase { kNotStarted, kStarting, kStarted };
  struct ExitRecord {
    uint32_t status = 0;
    std::chrono::system_clock::time_point at;
  };
  struct Process {
    std::string container_id;
    std::string exec_id;  // "" = init
    StdioConfig stdio;
    // Guarded by TaskService::mutex_.
    containerd::v1::types::Status status = containerd::v1::types::CREATED;
    uint32_t pid = 0;  // what containerd sees (VMM pid for init, guest pid for execs)
    StartPhase start_phase = StartPhase::kNotStarted;
    bool exit_claimed = false;
    std::optional<ExitRecord> exit;
    std::unique_ptr<ProcessIo> io;
    std::thread waiter;
  };
  struct Container {
    std::string id;
    std::string bundle;
    std::string work_dir;
    std::vector<RootfsMount> mounts;
    RootfsDisk disk;
    std::optional<size_t> slot;
    std::shared_ptr<Process> init;
    std::map<std::string, std::shared_ptr<Process>> execs;  // guarded by mutex_
    std::set<std::string> execs_creating;                  // guarded by mutex_
    // Serialises this container's TaskOOM and TaskExit publications: the OOM
    // notice (agent event stream) and the exit (Wait reply) arrive on
    // different threads, and containerd wants TaskOOM first.
    std::mutex events_mutex;
    bool oom_published = false;       // guarded by events_mutex
    bool init_exit_published = false;  // guarded by events_mutex
  };

  std::shared_ptr<Container> find_container(const std::string& id);
  std::shared_ptr<Process> find_process(const std::string& id, const std::string& exec_id,
                                        std::shared_ptr<Container>* container = nullptr);
  std::shared_ptr<Sandbox> sandbox();
  std::shared_ptr<Sandbox> live_sandbox();
  RuntimeConfig load_config(const containerd::task::v2::CreateTaskRequest& request);
  std::shared_ptr<Sandbox> boot_or_attach(const RuntimeConfig& config, Container& container, bool& booted);
  void resolve_backend(const RuntimeConfig& config, BackendKind& backend, std::string& accel);
  std::string vm_dir_for(const RuntimeConfig& config, const std::string& group) const;
  void start_waiter(const std::shared_ptr<Container>& c, const std::shared_ptr<Process>& p,
                    const std::shared_ptr<Sandbox>& sb);
  void wait_for_exit(std::shared_ptr<Container> c, std::shared_ptr<Process> p, std::shared_ptr<Sandbox> sb);
  void complete_exit(const std::shared_ptr<Container>& c, const std::shared_ptr<Process>& p, uint32_t status,
                     bool oom_killed, bool vm_gone);
  void on_vm_exit(const VmExitInfo& info);
  void on_oom(const std::string& container_id);
  // Stops the VM when no container is left or being created; true when it is gone.
  bool stop_sandbox_if_unused();
  void write_state_file(const Container& c, const Sandbox& sb);
  void reap_thread(std::thread thread);

  TaskServiceOptions options_;
  EventSink& events_;
  ShimLog& log_;
  std::string group_;  // the pod: set by the first Create

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, std::shared_ptr<Container>> containers_;
  std::set<std::string> creating_;
  std::shared_ptr<Sandbox> sandbox_;  // guarded by mutex_ (pointer) and sandbox_mutex_ (boot/stop)
  std::vector<std::thread> finished_threads_;
  bool shutting_down_ = false;

  std::mutex sandbox_mutex_;  // serialises boot, attach and stop of the VM
};

}  // namespace ember::shim
