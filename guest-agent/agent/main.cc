// ember-agent: PID 1 of ember's guest, or (for tests) a plain host process.
//
//   as PID 1:   options come from the kernel command line
//               (ember.listen=vsock:1024, ember.hostname=..., ember.debug)
//   host mode:  ember-agent --listen unix:PATH --root DIR [--cgroup-parent P]
//                           [--crun PATH] [--crun-flag F]... [--debug]
//                           [--shared-mounts] [--health-interval-ms N]
#include <malloc.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <iostream>
#include <string>

#include "guest-agent/agent/agent.h"
#include "guest-agent/agent/agent_log.h"
#include "guest-agent/agent/pid1.h"
#include "vmm/common/error.h"

namespace {

using ember::agent::AgentLog;
using ember::agent::AgentOptions;

[[noreturn]] void usage(const std::string& error) {
  std::cerr
      << "ember-agent: " << error << "\n"
      << "usage: ember-agent --listen unix:PATH|vsock[:PORT] --root DIR [--cgroup-parent PATH]\n"
      << "                   [--crun PATH] [--crun-flag FLAG]... [--debug] [--shared-mounts]\n"
      << "                   [--health-interval-ms N]\n";
  std::exit(2);
}

// crun refuses a hybrid cgroup layout whose v2 tree has controllers ("cgroups
// in hybrid mode not supported"). In the agent's private mount namespace the
// v2 mount can simply be hidden: crun then sees plain cgroup v1.
void hide_unified_cgroup_if_hybrid(AgentLog& log) {
  std::ifstream in("/sys/fs/cgroup/unified/cgroup.controllers");
  std::string controllers;
  if (!std::getline(in, controllers) || controllers.empty()) return;
  if (::umount2("/sys/fs/cgroup/unified", MNT_DETACH) == 0) {
    log.info("hybrid cgroups with v2 controllers (" + controllers +
             "): hid /sys/fs/cgroup/unified in the agent's mount namespace, crun uses cgroup v1");
  } else {
    log.warn("cannot hide /sys/fs/cgroup/unified: " + ember::common::errno_text(errno));
  }
}

long parse_ms(const std::string& text, const std::string& what) {
  try {
    std::size_t used = 0;
    long v = std::stol(text, &used);
    if (used == text.size() && v >= 0) return v;
  } catch (...) {
  }
  usage(what + ": \"" + text + "\" is not a number of milliseconds");
}

int host_main(int argc, char** argv, AgentLog& log) {
  AgentOptions options;
  bool private_mounts = true;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (auto eq = arg.find('='); eq != std::string::npos) return arg.substr(eq + 1);
      if (i + 1 >= argc) usage(arg + " needs a value");
      return argv[++i];
    };
    std::string name = arg.substr(0, arg.find('='));
    if (name == "--listen") {
      options.listen.push_back(value());
    } else if (name == "--root") {
      options.root_dir = value();
    } else if (name == "--cgroup-parent") {
      options.cgroup_parent = value();
    } else if (name == "--crun") {
      options.crun = value();
    } else if (name == "--crun-flag") {
      options.crun_flags.push_back(value());
    } else if (name == "--debug") {
      log.set_min_level(AgentLog::Level::kDebug);
    } else if (name == "--shared-mounts") {
      private_mounts = false;
    } else if (name == "--health-interval-ms") {
      options.health_interval = std::chrono::milliseconds(parse_ms(value(), arg));
    } else if (name == "--help" || name == "-h") {
      usage("help");
    } else {
      usage("unknown argument " + arg);
    }
  }
  if (options.listen.empty()) usage("--listen is required in host mode");
  if (options.root_dir.empty() || options.root_dir[0] != '/')
    usage("--root must be an absolute path");

  // Container init and exec processes are re-parented to us when crun exits.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  if (private_mounts) {
    // Rootfs mounts stay inside the agent: if it dies, the kernel tears them
    // down with the namespace instead of leaving them on the host.
    if (::unshare(CLONE_NEWNS) < 0 ||
        ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0) {
      log.error("private mount namespace: " + ember::common::errno_text(errno));
      return 1;
    }
    hide_unified_cgroup_if_hybrid(log);
  }
  ember::agent::run_agent(options, log);
  return 0;
}

[[noreturn]] void pid1_main(AgentLog& log) {
  using namespace ember::agent;
  pid1::ensure_console(log);
  bool power_off = false;
  try {
    pid1::leave_initramfs(log);
    pid1::setup_system(log, "ember");
    if (pid1::kernel_option("debug") == "1") log.set_min_level(AgentLog::Level::kDebug);
    std::string hostname = pid1::kernel_option("hostname");
    if (!hostname.empty() && ::sethostname(hostname.data(), hostname.size()) < 0) {
      log.warn("sethostname " + hostname + " failed");
    }
    // No oom_score_adj of -1000 for the agent: the kernel never OOM-kills
    // PID 1 anyway (mm/oom_kill.c oom_unkillable_task), and the value would
    // be inherited by crun and through it by every container process whose
    // spec has no non-zero oomScoreAdj (crun writes it only when it is not
    // 0, and never for exec): a memory cgroup of unkillable processes that
    // runs out loops on "Out of memory and no killable processes" forever.
    AgentOptions options;
    options.pid1 = true;
    if (std::string ms = pid1::kernel_option("health_interval_ms"); !ms.empty()) {
      try {
        options.health_interval = std::chrono::milliseconds(std::stol(ms));
      } catch (...) {
        log.warn("ignoring ember.health_interval_ms=" + ms + ": not a number");
      }
    }
    options.listen.push_back(pid1::kernel_option("listen", "vsock:1024"));
    options.root_dir = "/run/ember";
    power_off = run_agent(options, log).power_off;
  } catch (const std::exception& e) {
    log.error(std::string("fatal: ") + e.what());
  }
  pid1::end_guest(power_off, log);
}

}  // namespace

int main(int argc, char** argv) {
  // One malloc arena instead of one per handler thread: the agent allocates
  // little, and every arena keeps its own freed memory resident (guest RAM).
  ::mallopt(M_ARENA_MAX, 1);
  AgentLog log;
  log.set_console(STDERR_FILENO);
  try {
    ember::agent::block_agent_signals();
    if (::getpid() == 1) pid1_main(log);
    return host_main(argc, argv, log);
  } catch (const std::exception& e) {
    log.error(std::string("fatal: ") + e.what());
    if (::getpid() == 1) ember::agent::pid1::end_guest(false, log);
    return 1;
  }
}
