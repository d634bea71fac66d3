// `ctr run --rm … true` through a private containerd: ember (a microVM per
// container; QEMU microvm + ember's vhost-user devices here, the in-process
// ember VMM where KVM runs Linux) against runc (io.containerd.runc.v2) in the
// same run, same image, same containerd. The ember run is split into phases
// from the shim's own log (shim/README.md "Phases"):
//
//   shim start      `start` subcommand begins -> the daemon receives Create
//   rootfs          snapshot -> ext4 image (mkfs.ext4 -d)
//   vm boot         VMM start -> the guest agent answers
//   ctr create      agent CreateContainer (mount, crun create) + stdio attach
//   ctr start       Start RPC (crun start)
//   run             process start -> exit reported (process time + drain)
//   teardown        exit -> the shim process is gone (Delete, VM stop, Shutdown)
//
// usage: shim_run_bench [runs]   (default 5; EMBER_BENCH_RUNS too)
// Exit 77 (CTest: skipped) without root, containerd, QEMU or the guest image.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "tests/e2e/containerd_fixture.h"
#include "tests/harness/qemu_guest.h"

namespace {

using namespace ember::testing;
using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// RFC 3339 with nanoseconds (UTC, as the shim writes it) -> ms since epoch.
double parse_time_ms(const std::string& t) {
  std::tm tm{};
  int nanos = 0;
  if (std::sscanf(t.c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                  &tm.tm_sec, &nanos) < 6)
    return 0;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<double>(timegm(&tm)) * 1000.0 + nanos / 1e6;
}

struct LogLine {
  double at_ms;
  std::map<std::string, std::string> fields;
};

std::vector<LogLine> read_log(const std::string& path) {
  std::vector<LogLine> out;
  std::ifstream in(path);
  std::string line;
  std::regex field(R"re((\w+)=("(?:[^"\\]|\\.)*"|\S+))re");
  while (std::getline(in, line)) {
    LogLine l;
    for (std::sregex_iterator it(line.begin(), line.end(), field), end; it != end; ++it) {
      std::string v = (*it)[2];
      if (v.size() >= 2 && v.front() == '"') v = v.substr(1, v.size() - 2);
      l.fields[(*it)[1]] = v;
    }
    l.at_ms = parse_time_ms(l.fields["time"]);
    out.push_back(std::move(l));
  }
  return out;
}

struct EmberPhases {
  double shim_start = 0, rootfs = 0, vm_boot = 0, create = 0, start = 0, run = 0, teardown = 0;
};

// Phases of container `id` from the shim's debug log.
bool phases_of(const std::vector<LogLine>& log, const std::string& id, EmberPhases& p) {
  double t_start_cmd = 0, t_create = 0, t_started = 0, t_exited = 0, t_shim_exited = 0;
  std::string shim_pid;
  for (const auto& l : log) {
    auto f = [&](const char* k) {
      auto it = l.fields.find(k);
      return it == l.fields.end() ? std::string() : it->second;
    };
    std::string msg = f("msg");
    if (f("id") == id) {
      if (msg == "start" && t_start_cmd == 0) t_start_cmd = l.at_ms;
      if (msg == "create") {
        t_create = l.at_ms;
        shim_pid = f("shim_pid");
      }
      if (msg == "phase") {
        double d = std::atof(f("duration_ms").c_str());
        std::string phase = f("phase");
        if (phase == "rootfs") p.rootfs = d;
        if (phase == "vm_boot") p.vm_boot = d;
        if (phase == "agent_create") p.create = d;
        if (phase == "start" && f("exec_id").empty()) {
          p.start = d;
          t_started = l.at_ms;
        }
      }
      if (msg == "process exited" && f("exec_id").empty()) t_exited = l.at_ms;
    }
    if (msg == "shim exited" && !shim_pid.empty() && f("shim_pid") == shim_pid) t_shim_exited = l.at_ms;
  }
  if (!t_start_cmd || !t_create || !t_started || !t_exited || !t_shim_exited) return false;
  p.shim_start = t_create - t_start_cmd;
  p.run = t_exited - t_started;
  p.teardown = t_shim_exited - t_exited;
  return true;
}

double timed_run(PrivateContainerd& ctrd, const std::vector<std::string>& runtime_args, const std::string& id,
                 bool& ok) {
  std::vector<std::string> args = {"run", "--rm"};
  args.insert(args.end(), runtime_args.begin(), runtime_args.end());
  args.insert(args.end(), {kBusyboxImage, id, "true"});
  auto t0 = Clock::now();
  auto r = ctrd.ctr(args, std::chrono::minutes(5));
  double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  ok = r.ok();
  if (!ok) std::fprintf(stderr, "ctr run %s failed (%s):\n%s\n", id.c_str(), r.describe().c_str(), r.output.c_str());
  return ms;
}

}  // namespace

int main(int argc, char** argv) {
  int runs = argc > 1 ? std::atoi(argv[1]) : (std::getenv("EMBER_BENCH_RUNS") ? std::atoi(std::getenv("EMBER_BENCH_RUNS")) : 5);
  if (runs < 1) runs = 1;
  if (!running_as_root() || !have_containerd() || !have_qemu() || !have_agent_image() ||
      !std::filesystem::exists(shim_binary_dir() / "containerd-shim-ember-v2")) {
    std::printf("shim_run_bench: skipped (needs root, containerd, QEMU, the shim and the guest image)\n");
    return 77;
  }
  PrivateContainerd ctrd;
  ctrd.import_busybox();

  // One warm-up each: page cache, first snapshot unpack.
  bool ok = true;
  timed_run(ctrd, {"--runtime", "io.containerd.runc.v2"}, "warm-runc", ok);
  timed_run(ctrd, ctrd.ember_run_args(), "warm-ember", ok);
  if (!ok) return 1;

  std::vector<double> runc_ms, ember_ms;
  std::vector<EmberPhases> phases;
  for (int i = 0; i < runs; ++i) {
    runc_ms.push_back(timed_run(ctrd, {"--runtime", "io.containerd.runc.v2"}, "runc-" + std::to_string(i), ok));
    std::string id = "ember-" + std::to_string(i);
    ember_ms.push_back(timed_run(ctrd, ctrd.ember_run_args(), id, ok));
    if (!ok) return 1;
  }
  // The shim logs its exit after ctr returned; give the last one a moment.
  usleep(500000);
  auto log = read_log(ctrd.shim_debug_log().string());
  for (int i = 0; i < runs; ++i) {
    EmberPhases p;
    if (phases_of(log, "ember-" + std::to_string(i), p)) phases.push_back(p);
  }

  std::string accel = select_accelerator();
  std::printf("\nctr run --rm ... true, %d runs each, same containerd 1.6 (QEMU accel for ember: %s)\n\n", runs,
              accel.c_str());
  std::printf("%-6s", "run");
  for (int i = 0; i < runs; ++i) std::printf(" %9d", i + 1);
  std::printf(" %10s\n", "median");
  auto row = [&](const char* name, const std::vector<double>& v) {
    std::printf("%-6s", name);
    for (double x : v) std::printf(" %7.0fms", x);
    std::printf(" %8.0fms\n", median(v));
  };
  row("runc", runc_ms);
  row("ember", ember_ms);

  std::printf("\nember phases (median of %zu runs, from the shim log):\n", phases.size());
  auto col = [&](double EmberPhases::*m) {
    std::vector<double> v;
    for (const auto& p : phases) v.push_back(p.*m);
    return median(v);
  };
  struct {
    const char* name;
    double EmberPhases::*member;
  } cols[] = {{"shim start", &EmberPhases::shim_start}, {"rootfs", &EmberPhases::rootfs},
              {"vm boot", &EmberPhases::vm_boot},       {"ctr create", &EmberPhases::create},
              {"ctr start", &EmberPhases::start},       {"run", &EmberPhases::run},
              {"teardown", &EmberPhases::teardown}};
  double sum = 0;
  for (const auto& c : cols) {
    double v = col(c.member);
    sum += v;
    std::printf("  %-12s %8.0f ms\n", c.name, v);
  }
  std::printf("  %-12s %8.0f ms   (ctr wall time %0.f ms; the rest is ctr and containerd)\n", "sum", sum,
              median(ember_ms));
  std::printf("\nember / runc: %.1fx (%.0f ms vs %.0f ms)\n", median(ember_ms) / median(runc_ms), median(ember_ms),
              median(runc_ms));
  return 0;
}
