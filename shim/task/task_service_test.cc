// TaskService against a fake VM (shim/testing/fake_vm.h): the real Sandbox,
// AgentClient, hybrid-vsock dialer, stdio streams, FIFOs, rootfs images and
// state machine; only the guest is simulated.
#include "shim/task/task_service.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "containerd/cgroups/v2/metrics.pb.h"
#include "containerd/events/task.pb.h"
#include "containerd/runc/v1/process_details.pb.h"
#include "containerd/runtimeoptions/v1/api.pb.h"
#include "proto/ttrpc/status.h"
#include "shim/task/state_file.h"
#include "shim/testing/fake_vm.h"
#include "shim/testing/read_until_eof.h"

namespace ember::shim {
namespace {

namespace fs = std::filesystem;
namespace task = containerd::task::v2;
using testing::FakeHypervisor;

// containerd's event exchange, as the shim sees it: a list in publish order.
class RecordingSink : public EventSink {
 public:
  void publish(const google::protobuf::Message& event) override {
    std::lock_guard lock(mutex_);
    names_.push_back(event.GetTypeName().substr(std::string("containerd.events.").size()));
    payloads_.push_back(event.SerializeAsString());
    changed_.notify_all();
  }
  std::vector<std::string> names() {
    std::lock_guard lock(mutex_);
    return names_;
  }
  bool wait_for(const std::string& name, int count = 1) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, std::chrono::seconds(10),
                             [&] { return std::count(names_.begin(), names_.end(), name) >= count; });
  }
  template <typename T>
  T last(const std::string& name) {
    std::lock_guard lock(mutex_);
    T out;
    for (size_t i = 0; i < names_.size(); ++i)
      if (names_[i] == name) out.ParseFromString(payloads_[i]);
    return out;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> names_;
  std::vector<std::string> payloads_;
};

std::string read_fifo_until_eof(int fd) { return testing::read_until_eof(fd, 10000); }

class TaskServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/shim-task-test.XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    fs::create_directories(dir_ / "image" / "bin");
    std::ofstream(dir_ / "image" / "bin" / "hello") << "#!/bin/sh\necho hi\n";
    std::ofstream(dir_ / "vmlinux") << "not really a kernel";
    config_path_ = dir_ / "config.toml";
    std::ofstream(config_path_) << "[vm]\nkernel = \"" << (dir_ / "vmlinux").string() << "\"\ninitrd = \"\"\n"
                                << "spare_drive_slots = 2\nboot_timeout_ms = 5000\n"
                                << "[rootfs]\nslack_mib = 1\n[shim]\nstate_dir = \"" << (dir_ / "state").string()
                                << "\"\n";
    TaskServiceOptions options;
    options.ns = "default";
    options.containerd_address = "/run/test-containerd.sock";
    options.system_config_path = "";
    options.kvm_runs_linux = [](const RuntimeConfig&) { return false; };
    options.make_hypervisor = [this](BackendKind backend, ShimLog& log) {
      EXPECT_EQ(backend, BackendKind::kQemu);  // auto without working KVM
      auto h = std::make_unique<FakeHypervisor>(log);
      std::lock_guard lock(mutex_);
      hypervisors_.push_back(h.get());
      return h;
    };
    options.on_shutdown = [this] { shutdown_requested_ = true; };
    options.output_drain_timeout = std::chrono::seconds(5);
    service_ = std::make_unique<TaskService>(options, events_, log_);
  }

  void TearDown() override {
    service_.reset();
    fs::remove_all(dir_);
  }

  FakeHypervisor* vm() {
    std::lock_guard lock(mutex_);
    return hypervisors_.empty() ? nullptr : hypervisors_.back();
  }

  // A bundle with config.json running `args`, FIFOs for the requested streams.
  task::CreateTaskRequest make_request(const std::string& id, const std::vector<std::string>& args,
                                       bool with_stdin = false, const std::string& group = "") {
    fs::path bundle = dir_ / "bundles" / id;
    fs::create_directories(bundle / "work");
    nlohmann::json spec = {{"ociVersion", "1.0.2"},
                           {"process", {{"args", args}, {"cwd", "/"}}},
                           {"root", {{"path", "rootfs"}}},
                           {"annotations", nlohmann::json::object()}};
    if (!group.empty()) spec["annotations"]["io.kubernetes.cri.sandbox-id"] = group;
    std::ofstream(bundle / "config.json") << spec.dump();
    task::CreateTaskRequest req;
    req.set_id(id);
    req.set_bundle(bundle);
    auto* mount = req.add_rootfs();
    mount->set_type("bind");
    mount->set_source((dir_ / "image").string());
    mount->add_options("rbind");
    mount->add_options("ro");
    std::string out = bundle / "stdout";
    ::mkfifo(out.c_str(), 0600);
    req.set_stdout(out);
    readers_[id] = common::UniqueFd(::open(out.c_str(), O_RDONLY | O_NONBLOCK));
    if (with_stdin) {
      std::string in = bundle / "stdin";
      ::mkfifo(in.c_str(), 0600);
      req.set_stdin(in);
    }
    runtimeoptions::v1::Options options;
    options.set_config_path(config_path_);
    req.mutable_options()->set_type_url("runtimeoptions.v1.Options");
    req.mutable_options()->set_value(options.SerializeAsString());
    return req;
  }

  uint32_t create(const std::string& id, const std::vector<std::string>& args, bool with_stdin = false,
                  const std::string& group = "") {
    ttrpc::Context ctx;
    return service_->Create(ctx, make_request(id, args, with_stdin, group)).pid();
  }
  void start(const std::string& id, const std::string& exec_id = "") {
    ttrpc::Context ctx;
    task::StartRequest req;
    req.set_id(id);
    req.set_exec_id(exec_id);
    service_->Start(ctx, req);
  }
  task::WaitResponse wait(const std::string& id, const std::string& exec_id = "") {
    ttrpc::Context ctx;
    task::WaitRequest req;
    req.set_id(id);
    req.set_exec_id(exec_id);
    return service_->Wait(ctx, req);
  }
  task::StateResponse state(const std::string& id, const std::string& exec_id = "") {
    ttrpc::Context ctx;
    task::StateRequest req;
    req.set_id(id);
    req.set_exec_id(exec_id);
    return service_->State(ctx, req);
  }
  void kill(const std::string& id, uint32_t sig, const std::string& exec_id = "", bool all = false) {
    ttrpc::Context ctx;
    task::KillRequest req;
    req.set_id(id);
    req.set_exec_id(exec_id);
    req.set_signal(sig);
    req.set_all(all);
    service_->Kill(ctx, req);
  }
  task::DeleteResponse del(const std::string& id, const std::string& exec_id = "") {
    ttrpc::Context ctx;
    task::DeleteRequest req;
    req.set_id(id);
    req.set_exec_id(exec_id);
    return service_->Delete(ctx, req);
  }
  ttrpc::Code code_of(const std::function<void()>& fn) {
    try {
      fn();
    } catch (const ttrpc::StatusError& e) {
      return e.code();
    }
    return ttrpc::Code::kOk;
  }

  fs::path dir_;
  std::string config_path_;
  ShimLog log_;
  RecordingSink events_;
  std::unique_ptr<TaskService> service_;
  std::mutex mutex_;
  std::vector<FakeHypervisor*> hypervisors_;
  std::map<std::string, common::UniqueFd> readers_;
  std::atomic<bool> shutdown_requested_{false};
};

TEST_F(TaskServiceTest, RunsAProcessAndPublishesEventsInContainerdsOrder) {
  uint32_t pid = create("web", {"echo", "hello", "world"});
  EXPECT_EQ(pid, 4242u);  // the VMM's pid stands for the container
  EXPECT_EQ(state("web").status(), containerd::v1::types::CREATED);
  fs::path image = dir_ / "bundles/web/work/ember-rootfs.ext4";
  EXPECT_TRUE(fs::exists(image));
  EXPECT_TRUE(read_container_state(dir_ / "bundles/web").has_value());
  start("web");
  EXPECT_EQ(read_fifo_until_eof(readers_["web"].get()), "hello world\n");
  auto exit = wait("web");
  EXPECT_EQ(exit.exit_status(), 0u);
  EXPECT_GT(exit.exited_at().seconds(), 0);
  EXPECT_EQ(state("web").status(), containerd::v1::types::STOPPED);
  auto deleted = del("web");
  EXPECT_EQ(deleted.exit_status(), 0u);
  EXPECT_FALSE(fs::exists(image));
  EXPECT_FALSE(read_container_state(dir_ / "bundles/web").has_value());
  EXPECT_EQ(events_.names(), (std::vector<std::string>{"TaskCreate", "TaskStart", "TaskExit", "TaskDelete"}));
  EXPECT_EQ(events_.last<containerd::events::TaskExit>("TaskExit").id(), "web");
  // The last container went: the VM went with it.
  EXPECT_EQ(service_->container_count(), 0u);
  EXPECT_TRUE(!fs::exists(dir_ / "state") || fs::is_empty(dir_ / "state"));
}

TEST_F(TaskServiceTest, ExitStatusPropagates) {
  create("c", {"exit", "7"});
  start("c");
  EXPECT_EQ(wait("c").exit_status(), 7u);
  EXPECT_EQ(state("c").exit_status(), 7u);
  ASSERT_TRUE(events_.wait_for("TaskExit"));
  EXPECT_EQ(events_.last<containerd::events::TaskExit>("TaskExit").exit_status(), 7u);
  del("c");
}

TEST_F(TaskServiceTest, StdinRoundTripsThroughTheGuest) {
  create("cat", {"cat"}, /*with_stdin=*/true);
  start("cat");
  {
    common::UniqueFd writer(::open((dir_ / "bundles/cat/stdin").c_str(), O_WRONLY));
    ASSERT_TRUE(writer);
    ASSERT_EQ(::write(writer.get(), "ping\n", 5), 5);
  }
  EXPECT_EQ(read_fifo_until_eof(readers_["cat"].get()), "ping\n");
  EXPECT_EQ(wait("cat").exit_status(), 0u);
  del("cat");
}

TEST_F(TaskServiceTest, KillEndsTheProcessAndAKillAfterExitIsNotFound) {
  create("s", {"sleep"});
  start("s");
  EXPECT_EQ(state("s").status(), containerd::v1::types::RUNNING);
  EXPECT_EQ(code_of([&] { del("s"); }), ttrpc::Code::kFailedPrecondition);
  kill("s", SIGTERM);
  EXPECT_EQ(wait("s").exit_status(), 128u + SIGTERM);
  EXPECT_EQ(code_of([&] { kill("s", SIGKILL, "", true); }), ttrpc::Code::kNotFound);
  del("s");
}

TEST_F(TaskServiceTest, StateNeverWaitsForTheGuest) {
  create("s", {"sleep"});
  start("s");
  vm()->agent()->set_frozen(true);
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 100; ++i) EXPECT_EQ(state("s").status(), containerd::v1::types::RUNNING);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1));
  vm()->agent()->set_frozen(false);
  kill("s", SIGKILL);
  EXPECT_EQ(wait("s").exit_status(), 137u);
  del("s");
}

TEST_F(TaskServiceTest, ExecRunsInTheContainerWithItsOwnEvents) {
  create("c", {"sleep"});
  start("c");
  fs::path out = dir_ / "bundles/c/exec-stdout";
  ::mkfifo(out.c_str(), 0600);
  common::UniqueFd reader(::open(out.c_str(), O_RDONLY | O_NONBLOCK));
  ttrpc::Context ctx;
  task::ExecProcessRequest exec;
  exec.set_id("c");
  exec.set_exec_id("e1");
  exec.set_stdout(out);
  exec.mutable_spec()->set_type_url("types.containerd.io/opencontainers/runtime-spec/1/Process");
  exec.mutable_spec()->set_value(R"({"args": ["echo", "from", "exec"], "cwd": "/"})");
  service_->Exec(ctx, exec);
  EXPECT_EQ(code_of([&] { service_->Exec(ctx, exec); }), ttrpc::Code::kAlreadyExists);
  EXPECT_EQ(state("c", "e1").status(), containerd::v1::types::CREATED);
  start("c", "e1");
  EXPECT_EQ(read_fifo_until_eof(reader.get()), "from exec\n");
  EXPECT_EQ(wait("c", "e1").exit_status(), 0u);
  EXPECT_EQ(state("c", "e1").status(), containerd::v1::types::STOPPED);
  del("c", "e1");
  EXPECT_EQ(code_of([&] { state("c", "e1"); }), ttrpc::Code::kNotFound);
  kill("c", SIGKILL);
  wait("c");
  del("c");
  EXPECT_EQ(events_.names(), (std::vector<std::string>{"TaskCreate", "TaskStart", "TaskExecAdded", "TaskExecStarted",
                                                       "TaskExit", "TaskExit", "TaskDelete"}));
  EXPECT_EQ(events_.last<containerd::events::TaskExecStarted>("TaskExecStarted").exec_id(), "e1");
}

TEST_F(TaskServiceTest, OomIsPublishedBeforeTheExit) {
  create("hog", {"oom"});
  start("hog");
  EXPECT_EQ(wait("hog").exit_status(), 137u);
  // Wait answers once the exit is recorded; its event may still be on its way.
  ASSERT_TRUE(events_.wait_for("TaskExit"));
  auto names = events_.names();
  auto oom = std::find(names.begin(), names.end(), "TaskOOM");
  auto exit = std::find(names.begin(), names.end(), "TaskExit");
  ASSERT_NE(oom, names.end());
  ASSERT_NE(exit, names.end());
  EXPECT_LT(oom, exit);
  del("hog");
}

TEST_F(TaskServiceTest, AVmCrashEndsEveryProcessWith255) {
  create("a", {"sleep"});
  start("a");
  fs::path out = dir_ / "bundles/a/exec-stdout";
  ::mkfifo(out.c_str(), 0600);
  ttrpc::Context ctx;
  task::ExecProcessRequest exec;
  exec.set_id("a");
  exec.set_exec_id("e");
  exec.set_stdout(out);
  exec.mutable_spec()->set_value(R"({"args": ["sleep"]})");
  service_->Exec(ctx, exec);
  start("a", "e");
  vm()->crash();
  EXPECT_EQ(wait("a").exit_status(), kVmLostExitStatus);
  EXPECT_EQ(wait("a", "e").exit_status(), kVmLostExitStatus);
  EXPECT_TRUE(events_.wait_for("TaskExit", 2));
  EXPECT_EQ(code_of([&] { kill("a", SIGKILL); }), ttrpc::Code::kNotFound);
  del("a", "e");
  del("a");
  EXPECT_FALSE(fs::exists(dir_ / "bundles/a/work/ember-rootfs.ext4"));
}

TEST_F(TaskServiceTest, ASecondContainerOfThePodGetsASpareDriveSlot) {
  create("pod", {"sleep"}, false, "pod");
  start("pod");
  create("app", {"echo", "in", "pod"}, false, "pod");
  ASSERT_EQ(hypervisors_.size(), 1u);  // one VM for the pod
  EXPECT_EQ(vm()->agent()->block_changes(), 1);
  std::string app_image = dir_ / "bundles/app/work/ember-rootfs.ext4";
  auto paths = vm()->drive_paths();
  EXPECT_NE(std::find(paths.begin(), paths.end(), app_image), paths.end());
  start("app");
  EXPECT_EQ(read_fifo_until_eof(readers_["app"].get()), "in pod\n");
  wait("app");
  del("app");
  paths = vm()->drive_paths();
  EXPECT_EQ(std::find(paths.begin(), paths.end(), app_image), paths.end());  // slot back to its placeholder
  EXPECT_TRUE(fs::exists(dir_ / "state"));  // the VM still runs for "pod"
  // A container of another pod is refused by this shim.
  EXPECT_EQ(code_of([&] { create("stranger", {"sleep"}, false, "other"); }), ttrpc::Code::kFailedPrecondition);
  kill("pod", SIGKILL);
  wait("pod");
  del("pod");
}

TEST_F(TaskServiceTest, RunsOutOfSlotsWithAClearError) {
  create("p", {"sleep"}, false, "p");
  create("a1", {"sleep"}, false, "p");
  create("a2", {"sleep"}, false, "p");
  try {
    create("a3", {"sleep"}, false, "p");
    FAIL() << "no error";
  } catch (const ttrpc::StatusError& e) {
    EXPECT_NE(std::string(e.what()).find("no free drive slot"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir_ / "bundles/a3/work/ember-rootfs.ext4"));
  for (auto id : {"a2", "a1", "p"}) del(id);
}

TEST_F(TaskServiceTest, StatsPidsUpdateAndPause) {
  create("c", {"sleep"});
  start("c");
  ttrpc::Context ctx;
  task::StatsRequest stats_req;
  stats_req.set_id("c");
  auto stats = service_->Stats(ctx, stats_req);
  EXPECT_EQ(stats.stats().type_url(), "io.containerd.cgroups.v2.Metrics");
  io::containerd::cgroups::v2::Metrics metrics;
  ASSERT_TRUE(metrics.ParseFromString(stats.stats().value()));
  EXPECT_EQ(metrics.cpu().usage_usec(), 1000u);
  EXPECT_EQ(metrics.memory().usage(), 1u << 20);
  EXPECT_EQ(metrics.memory().inactive_file(), 4096u);
  EXPECT_EQ(metrics.pids().current(), 1u);

  task::PidsRequest pids_req;
  pids_req.set_id("c");
  auto pids = service_->Pids(ctx, pids_req);
  ASSERT_EQ(pids.processes_size(), 1);
  EXPECT_EQ(pids.processes(0).pid(), 100u);

  task::UpdateTaskRequest update;
  update.set_id("c");
  update.mutable_resources()->set_value(R"({"memory": {"limit": 268435456}})");
  service_->Update(ctx, update);
  EXPECT_EQ(vm()->agent()->last_update_json(), R"({"memory": {"limit": 268435456}})");

  task::PauseRequest pause;
  pause.set_id("c");
  service_->Pause(ctx, pause);
  EXPECT_TRUE(vm()->paused());
  EXPECT_EQ(state("c").status(), containerd::v1::types::PAUSED);
  EXPECT_EQ(code_of([&] { del("c"); }), ttrpc::Code::kFailedPrecondition);
  task::ResumeRequest resume;
  resume.set_id("c");
  service_->Resume(ctx, resume);
  EXPECT_FALSE(vm()->paused());
  EXPECT_EQ(state("c").status(), containerd::v1::types::RUNNING);
  ASSERT_TRUE(events_.wait_for("TaskResumed"));

  task::ResizePtyRequest resize;
  resize.set_id("c");
  resize.set_width(120);
  resize.set_height(40);
  service_->ResizePty(ctx, resize);
  EXPECT_EQ(vm()->agent()->last_resize(), (std::pair<uint32_t, uint32_t>{120, 40}));

  task::CheckpointTaskRequest checkpoint;
  checkpoint.set_id("c");
  EXPECT_EQ(code_of([&] { service_->Checkpoint(ctx, checkpoint); }), ttrpc::Code::kUnimplemented);
  kill("c", SIGKILL);
  wait("c");
  del("c");
}

TEST_F(TaskServiceTest, MissingKernelFailsCreateNamingFileKeyAndPath) {
  std::ofstream(config_path_) << "[vm]\nkernel = \"/nonexistent/vmlinux\"\n";
  try {
    create("c", {"sleep"});
    FAIL() << "no error";
  } catch (const ttrpc::StatusError& e) {
    EXPECT_EQ(e.code(), ttrpc::Code::kInvalidArgument);
    EXPECT_EQ(e.status().message,
              "config " + config_path_ + ": vm.kernel: /nonexistent/vmlinux: No such file or directory");
  }
  EXPECT_EQ(service_->container_count(), 0u);
  EXPECT_TRUE(hypervisors_.empty());
}

TEST_F(TaskServiceTest, ShutdownExitsOnlyWithoutContainersAndUnknownIdsAreNotFound) {
  EXPECT_EQ(code_of([&] { state("nope"); }), ttrpc::Code::kNotFound);
  EXPECT_EQ(code_of([&] { del("nope"); }), ttrpc::Code::kNotFound);
  create("c", {"sleep"});
  EXPECT_EQ(code_of([&] { create("c", {"sleep"}); }), ttrpc::Code::kAlreadyExists);
  ttrpc::Context ctx;
  task::ShutdownRequest shutdown;
  shutdown.set_id("c");
  service_->Shutdown(ctx, shutdown);
  EXPECT_FALSE(shutdown_requested_.load());
  del("c");  // created, never started: killed and removed
  service_->Shutdown(ctx, shutdown);
  EXPECT_TRUE(shutdown_requested_.load());
}

TEST_F(TaskServiceTest, WaitReturnsWhenTheCallIsCancelled) {
  create("s", {"sleep"});
  start("s");
  ttrpc::Context ctx;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ctx.cancel();
  });
  task::WaitRequest req;
  req.set_id("s");
  EXPECT_THROW(service_->Wait(ctx, req), ttrpc::StatusError);
  canceller.join();
  kill("s", SIGKILL);
  wait("s");
  del("s");
}

}  // namespace
}  // namespace ember::shim
