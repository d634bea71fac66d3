#include "guest-agent/agent/agent.h"

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <atomic>

#include "guest-agent/agent/agent_service.h"
#include "guest-agent/agent/cgroups.h"
#include "guest-agent/agent/connection_router.h"
#include "guest-agent/agent/container_manager.h"
#include "guest-agent/agent/event_queue.h"
#include "guest-agent/agent/loop_timer.h"
#include "guest-agent/agent/reaper.h"
#include "proto/ttrpc/server.h"
#include "vmm/common/error.h"
#include "vmm/common/event_loop.h"

namespace ember::agent {

void block_agent_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  if (::pthread_sigmask(SIG_BLOCK, &set, nullptr) != 0)
    throw common::Error("block agent signals failed");
  ::signal(SIGPIPE, SIG_IGN);
}

AgentExit run_agent(const AgentOptions& options, AgentLog& log) {
  common::EventLoop loop;
  Reaper reaper(loop);
  EventQueue events;
  Cgroups cgroups = Cgroups::detect();
  log.info("cgroup v" + std::to_string(cgroups.version()) + ", state in " + options.root_dir);

  ContainerManager::Config config;
  config.root_dir = options.root_dir;
  config.cgroup_parent = options.cgroup_parent;
  config.crun.binary = options.crun;
  config.crun.global_flags = options.crun_flags;
  config.health_interval = options.health_interval;
  ContainerManager manager(loop, reaper, log, cgroups, events, config);

  AgentExit exit;
  bool shutting_down = false;
  LoopTimer stop_timer(loop, [&loop] { loop.stop(); });
  auto begin_shutdown = [&](bool power_off, const std::string& why) {
    if (shutting_down) return;
    shutting_down = true;
    exit.power_off = power_off;
    log.info("shutting down (" + why + "): removing " + std::to_string(manager.container_count()) +
             " container(s)");
    manager.shutdown_all([&](Result<Unit>) {
      // A moment for the Shutdown reply to leave before the server closes.
      stop_timer.arm(std::chrono::milliseconds(100));
    });
  };

  ttrpc::ServerOptions server_options;
  server_options.log = [&log](std::string_view line) { log.info("ttrpc: " + std::string(line)); };
  ttrpc::Server server(server_options);
  AgentService::Hooks hooks;
  hooks.pid1 = options.pid1;
  hooks.shutdown = [&](bool power_off) {
    loop.post([&, power_off] { begin_shutdown(power_off, "Shutdown request"); });
  };
  AgentService service(loop, manager, events, log, hooks);
  server.register_service(service);

  ConnectionRouter router(loop, manager, log, [&server](common::UniqueFd fd) {
    server.serve_connection(std::move(fd));
  });
  for (const auto& address : options.listen) {
    router.serve(listen_on(address));
    log.info("listening on " + address);
  }

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  common::UniqueFd signals(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!signals) common::throw_errno("signalfd SIGTERM/SIGINT");
  loop.add(signals.get(), EPOLLIN, [&](uint32_t) {
    signalfd_siginfo info;
    while (::read(signals.get(), &info, sizeof info) == sizeof info) {
      begin_shutdown(false, info.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
    }
  });

  log.info(std::string("ember-agent ") + kAgentVersion + " ready" +
           (options.pid1 ? " (PID 1)" : " (host mode)"));
  loop.run();
  loop.remove(signals.get());
  server.shutdown();
  log.info("agent stopped");
  return exit;
}

}  // namespace ember::agent
