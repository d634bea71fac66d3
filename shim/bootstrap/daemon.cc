#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <mutex>
#include <thread>

#include "containerd/task/v3/shim.ttrpc.pb.h"
#include "proto/ttrpc/server.h"
#include "shim/bootstrap/commands.h"
#include "shim/config/runtime_config.h"
#include "shim/events/event_publisher.h"
#include "shim/log/shim_log.h"
#include "shim/task/task_service.h"
#include "vmm/common/error.h"

namespace ember::shim {

namespace {

constexpr int kListenerFd = 3;

std::string listener_path(int fd) {
  sockaddr_un addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) < 0 || addr.sun_family != AF_UNIX) return "";
  return std::string(addr.sun_path, ::strnlen(addr.sun_path, sizeof addr.sun_path));
}

struct ExitSignal {
  std::mutex mutex;
  std::condition_variable cv;
  bool requested = false;
  std::string reason;
  void request(std::string why) {
    std::lock_guard lock(mutex);
    if (!requested) reason = std::move(why);
    requested = true;
    cv.notify_all();
  }
};

}  // namespace

int run_daemon(const ShimFlags& flags) {
  // A client that vanished must never kill us with SIGPIPE.
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  ShimLog log;
  // containerd reads the `log` FIFO in the bundle (our cwd) and relays it.
  common::UniqueFd log_fifo(::open("log", O_WRONLY | O_NONBLOCK | O_CLOEXEC));
  if (log_fifo) log.add_sink(std::move(log_fifo));
  const char* config_env = std::getenv(kConfigPathEnv);
  std::string config_path = resolve_config_path(config_env ? config_env : "");
  try {
    RuntimeConfig config = load_runtime_config(config_path);
    log.set_level(flags.debug ? LogLevel::kDebug : config.log_level);
    if (!config.debug_log.empty()) log.add_file(config.debug_log);
  } catch (const std::exception& e) {
    log.warn("runtime config", {{"error", e.what()}});
  }
  log.set_base_fields({{"namespace", flags.ns}, {"shim_pid", ::getpid()}});

  struct stat st {};
  if (::fstat(kListenerFd, &st) < 0 || !S_ISSOCK(st.st_mode)) {
    log.error("daemon started without its listening socket on fd 3");
    std::cerr << "containerd-shim-ember-v2: no listening socket on fd 3 (run through `start`)\n";
    return 1;
  }
  std::string socket = listener_path(kListenerFd);
  log.info("shim daemon serving", {{"id", flags.id}, {"socket", socket}});

  ExitSignal exit_signal;
  const char* ttrpc_env = std::getenv("TTRPC_ADDRESS");
  EventPublisherOptions publisher_options;
  publisher_options.ttrpc_address = ttrpc_env ? ttrpc_env : flags.address + ".ttrpc";
  publisher_options.ns = flags.ns;
  EventPublisher publisher(publisher_options, log);

  TaskServiceOptions options;
  options.ns = flags.ns;
  options.containerd_address = flags.address;
  options.on_shutdown = [&] { exit_signal.request("shutdown"); };
  TaskService service(options, publisher, log);

  ttrpc::ServerOptions server_options;
  server_options.log = [&log](std::string_view line) { log.info("ttrpc", {{"detail", line}}); };
  ttrpc::Server server(server_options);
  server.register_service(service);
  server.register_service(service, std::string(containerd::task::v3::TaskService::kServiceName));
  server.serve_listener(common::UniqueFd(kListenerFd));

  std::thread signals([&] {
    ::pthread_setname_np(::pthread_self(), "ember-signals");
    int sig = 0;
    while (true) {
      if (sigwait(&stop_signals, &sig) != 0) continue;
      exit_signal.request(std::string("signal ") + ::strsignal(sig));
      return;
    }
  });

  {
    std::unique_lock lock(exit_signal.mutex);
    // A shim that was never given (or lost all) containers and no Shutdown
    // exits after a while instead of leaking.
    auto idle_limit = std::chrono::minutes(5);
    auto idle_since = std::chrono::steady_clock::now();
    while (!exit_signal.requested) {
      exit_signal.cv.wait_for(lock, std::chrono::seconds(5));
      if (service.busy_count() > 0) idle_since = std::chrono::steady_clock::now();
      if (std::chrono::steady_clock::now() - idle_since > idle_limit) {
        exit_signal.requested = true;
        exit_signal.reason = "idle without containers";
      }
    }
  }
  log.info("shim exiting", {{"reason", exit_signal.reason}});
  // Stop taking requests before the socket goes, so `start` never joins a dying shim.
  if (!socket.empty()) ::unlink(socket.c_str());
  server.shutdown();
  service.shutdown();
  publisher.flush(std::chrono::seconds(3));
  publisher.close();
  log.info("shim exited");
  // The signal thread waits in sigwait(); wake it so it can be joined.
  ::kill(::getpid(), SIGTERM);
  signals.join();
  return 0;
}

}  // namespace ember::shim
