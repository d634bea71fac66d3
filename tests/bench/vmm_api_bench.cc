// Process start to API ready: ember-vmm against QEMU microvm, measured in
// the same run on the same machine.
//
//   ember-vmm  spawn -> first answer to `GET /` on its API socket
//   QEMU       spawn `qemu-system-x86_64 -M microvm -nodefaults -nographic -S
//              -qmp unix:...` -> QMP greeting on its socket
//
// Wall time is taken by this process; CPU time is the child's own (user +
// system, all threads), read with wait4() after the child is killed at the
// ready point (it is idle in epoll_wait by then, so nothing is added).
// Prints medians and ratios; no assertions (tests/bench/README convention).
// Firecracker's specification for the same figure is <= 8 CPU ms.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

struct Sample {
  double wall_ms = 0;
  double cpu_ms = 0;
  double connect_ms = 0;  // socket accepting connections (ember only)
};

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

int connect_unix(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  path.copy(addr.sun_path, sizeof addr.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return fd;
  ::close(fd);
  return -1;
}

// Reads until `done(buffer)` or 5 s pass.
template <class Done>
bool read_until(int fd, Done done) {
  std::string buffer;
  auto deadline = Clock::now() + std::chrono::seconds(5);
  while (!done(buffer)) {
    pollfd p{fd, POLLIN, 0};
    if (Clock::now() > deadline || ::poll(&p, 1, 100) < 0) return false;
    if (!p.revents) continue;
    char tmp[4096];
    ssize_t n = ::read(fd, tmp, sizeof tmp);
    if (n <= 0) return false;
    buffer.append(tmp, static_cast<size_t>(n));
  }
  return true;
}

// Spawns argv, waits for `ready(socket)` to succeed, kills the child and
// returns the sample.
// posix_spawn with stdout and stderr on /dev/null; nullopt when it fails.
std::optional<pid_t> spawn_quiet(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid;
  int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return std::nullopt;
  return pid;
}

double cpu_ms(const rusage& usage) {
  return (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e3 +
         (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e3;
}

template <class Ready>
std::optional<Sample> measure(const std::vector<std::string>& argv, const std::string& socket,
                              Ready ready) {
  std::filesystem::remove(socket);
  auto start = Clock::now();
  std::optional<pid_t> spawned = spawn_quiet(argv);
  if (!spawned) return std::nullopt;
  pid_t pid = *spawned;

  Sample s;
  int fd = -1;
  auto deadline = start + std::chrono::seconds(10);
  while ((fd = connect_unix(socket)) < 0 && Clock::now() < deadline) {
    if (waitpid(pid, nullptr, WNOHANG) == pid) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  s.connect_ms = ms(Clock::now() - start);
  bool ok = fd >= 0 && ready(fd);
  s.wall_ms = ms(Clock::now() - start);
  if (fd >= 0) ::close(fd);
  ::kill(pid, SIGKILL);
  int status;
  rusage usage{};
  ::wait4(pid, &status, 0, &usage);
  std::filesystem::remove(socket);
  if (!ok) return std::nullopt;
  s.cpu_ms = cpu_ms(usage);
  return s;
}

// CPU ms of a process that runs to its end: what merely executing a program
// costs on this host (exec, page faults, exit). On nested or paravirtualised
// hosts this floor alone can be over 1 ms, so the figures above it matter.
std::optional<Sample> measure_to_exit(const std::vector<std::string>& argv) {
  auto start = Clock::now();
  std::optional<pid_t> pid = spawn_quiet(argv);
  if (!pid) return std::nullopt;
  int status;
  rusage usage{};
  ::wait4(*pid, &status, 0, &usage);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return std::nullopt;
  Sample s;
  s.wall_ms = ms(Clock::now() - start);
  s.cpu_ms = cpu_ms(usage);
  return s;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

struct Summary {
  double wall = 0, cpu = 0, connect = 0, cpu_min = 0;
  int runs = 0;
};

template <class Run>
Summary run_many(int n, Run run) {
  std::vector<double> wall, cpu, connect;
  for (int i = 0; i < n; ++i) {
    if (auto s = run()) {
      wall.push_back(s->wall_ms);
      cpu.push_back(s->cpu_ms);
      connect.push_back(s->connect_ms);
    }
  }
  Summary out;
  out.runs = static_cast<int>(wall.size());
  out.wall = median(wall);
  out.cpu = median(cpu);
  out.connect = median(connect);
  out.cpu_min = cpu.empty() ? 0 : *std::min_element(cpu.begin(), cpu.end());
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int runs = argc > 1 ? std::atoi(argv[1]) : 30;
  std::string dir =
      std::filesystem::temp_directory_path() / ("vmm_api_bench." + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::string ember = std::string(EMBER_BINARY_DIR) + "/vmm/api/ember-vmm";
  std::string ember_sock = dir + "/api.sock";
  std::string qemu_sock = dir + "/qmp.sock";

  auto http_ready = [](int fd) {
    const char req[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    if (::send(fd, req, sizeof req - 1, MSG_NOSIGNAL) < 0) return false;
    return read_until(fd, [](const std::string& b) {
      size_t end = b.find("\r\n\r\n");
      return end != std::string::npos && b.find('}', end) != std::string::npos;
    });
  };
  auto qmp_ready = [](int fd) {
    return read_until(fd, [](const std::string& b) {
      return b.find("\"QMP\"") != std::string::npos && b.find('\n') != std::string::npos;
    });
  };

  Summary e = run_many(runs, [&] {
    return measure({ember, "--api-sock", ember_sock, "--level", "Warning"}, ember_sock, http_ready);
  });

  Summary floor_true = run_many(runs, [&] { return measure_to_exit({"/bin/true"}); });
  Summary floor_version = run_many(runs, [&] { return measure_to_exit({ember, "--version"}); });

  std::string qemu_bin = "/usr/bin/qemu-system-x86_64";
  Summary q;
  bool have_qemu = std::filesystem::exists(qemu_bin);
  if (have_qemu) {
    q = run_many(runs, [&] {
      return measure({qemu_bin, "-M", "microvm", "-nodefaults", "-nographic", "-S", "-display",
                      "none", "-qmp", "unix:" + qemu_sock + ",server=on,wait=off"},
                     qemu_sock, qmp_ready);
    });
  }
  std::filesystem::remove_all(dir);

  std::printf("process start -> API ready, median of %d runs (%s)\n", runs, ember.c_str());
  std::printf("  %-34s %9s %9s %9s\n", "", "wall ms", "CPU ms", "CPU min");
  std::printf("  %-34s %9.2f %9.2f %9.2f   (socket connectable after %.2f ms; %d/%d runs)\n",
              "ember-vmm (GET / answered)", e.wall, e.cpu, e.cpu_min, e.connect, e.runs, runs);
  if (have_qemu && q.runs > 0) {
    std::printf("  %-34s %9.2f %9.2f %9.2f   (%d/%d runs)\n", "qemu microvm -S (QMP greeting)",
                q.wall, q.cpu, q.cpu_min, q.runs, runs);
    std::printf("  ratio qemu/ember: wall %.1fx, CPU %.1fx\n", q.wall / e.wall, q.cpu / e.cpu);
  } else {
    std::printf("  qemu-system-x86_64 not available: no baseline\n");
  }
  std::printf("  %-34s %9.2f %9.2f %9.2f   (this host's exec floor)\n", "/bin/true (to exit)",
              floor_true.wall, floor_true.cpu, floor_true.cpu_min);
  std::printf("  %-34s %9.2f %9.2f %9.2f   (binary load, no API)\n", "ember-vmm --version (to exit)",
              floor_version.wall, floor_version.cpu, floor_version.cpu_min);
  std::printf("  ember-vmm CPU above the exec floor: %.2f ms (above its own --version: %.2f ms)\n",
              e.cpu - floor_true.cpu, e.cpu - floor_version.cpu);
  std::printf("  targets: ember <= 2 CPU ms; Firecracker's specification <= 8 CPU ms\n");
  if (e.runs == 0) return 1;
  return have_qemu ? 0 : 77;
}
