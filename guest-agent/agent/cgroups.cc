#include "guest-agent/agent/cgroups.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "vmm/common/error.h"

namespace ember::agent {
namespace {

constexpr uint64_t kNoLimit = std::numeric_limits<uint64_t>::max();

bool read_file(const std::string& path, std::string& out) {
  std::ifstream in(path);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return true;
}

// A file holding one number, or "max" (-> kNoLimit).
uint64_t read_u64(const std::string& path, uint64_t fallback = 0) {
  std::string s;
  if (!read_file(path, s)) return fallback;
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  if (s == "max") return kNoLimit;
  try {
    return std::stoull(s);
  } catch (...) {
    return fallback;
  }
}

// "key value" lines (cpu.stat, memory.stat, memory.events, memory.oom_control).
std::map<std::string, uint64_t> read_keyed(const std::string& path) {
  std::map<std::string, uint64_t> out;
  std::ifstream in(path);
  std::string key;
  uint64_t value;
  while (in >> key >> value) out[key] = value;
  return out;
}

uint64_t get(const std::map<std::string, uint64_t>& m, const std::string& key) {
  auto it = m.find(key);
  return it == m.end() ? 0 : it->second;
}

std::string join(const std::string& mount, const std::string& path) {
  if (mount.empty()) return "";
  if (path.empty() || path == "/") return mount;
  return mount + (path.front() == '/' ? "" : "/") + path;
}

void collect_pids(const std::string& dir, std::vector<pid_t>& out) {
  std::ifstream in(dir + "/cgroup.procs");
  pid_t pid;
  while (in >> pid) out.push_back(pid);
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  while (dirent* e = ::readdir(d)) {
    if (e->d_type == DT_DIR && e->d_name[0] != '.') collect_pids(dir + "/" + e->d_name, out);
  }
  ::closedir(d);
}

bool remove_cgroup_dir(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return errno == ENOENT;
  bool ok = true;
  while (dirent* e = ::readdir(d)) {
    if (e->d_type == DT_DIR && e->d_name[0] != '.')
      ok = remove_cgroup_dir(dir + "/" + e->d_name) && ok;
  }
  ::closedir(d);
  return (::rmdir(dir.c_str()) == 0 || errno == ENOENT) && ok;
}

}  // namespace

Cgroups Cgroups::detect(const std::string& mountinfo) {
  Cgroups c;
  std::ifstream in(mountinfo);
  std::string line;
  while (std::getline(in, line)) {
    // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
    std::istringstream ss(line);
    std::string id, parent, devno, root, mount_point, options;
    ss >> id >> parent >> devno >> root >> mount_point >> options;
    std::string field;
    while (ss >> field && field != "-") {
    }
    std::string fstype, source, super;
    ss >> fstype >> source >> super;
    if (fstype == "cgroup2") {
      if (c.unified_.empty() || mount_point == "/sys/fs/cgroup") c.unified_ = mount_point;
    } else if (fstype == "cgroup") {
      std::istringstream opts(super);
      std::string opt;
      while (std::getline(opts, opt, ',')) {
        if (opt == "rw" || opt == "ro" || opt.find('=') != std::string::npos) continue;
        c.v1_mounts_.emplace(opt, mount_point);
      }
    }
  }
  if (c.v1_mounts_.count("memory")) {
    c.version_ = 1;
  } else if (!c.unified_.empty()) {
    c.version_ = 2;
  }
  return c;
}

std::string Cgroups::dir(const std::string& path, const std::string& controller) const {
  if (version_ == 2) return join(unified_, path);
  auto it = v1_mounts_.find(controller);
  return it == v1_mounts_.end() ? "" : join(it->second, path);
}

CgroupStats Cgroups::stats(const std::string& path) const {
  CgroupStats s;
  s.version = version_;
  if (version_ == 2) {
    std::string d = dir(path);
    auto cpu = read_keyed(d + "/cpu.stat");
    s.cpu_usage_usec = get(cpu, "usage_usec");
    s.cpu_user_usec = get(cpu, "user_usec");
    s.cpu_system_usec = get(cpu, "system_usec");
    s.cpu_nr_periods = get(cpu, "nr_periods");
    s.cpu_nr_throttled = get(cpu, "nr_throttled");
    s.cpu_throttled_usec = get(cpu, "throttled_usec");
    s.mem_usage = read_u64(d + "/memory.current");
    s.mem_limit = read_u64(d + "/memory.max", kNoLimit);
    s.mem_max_usage = read_u64(d + "/memory.peak");
    s.mem_swap_usage = read_u64(d + "/memory.swap.current");
    s.mem_swap_limit = read_u64(d + "/memory.swap.max", kNoLimit);
    auto events = read_keyed(d + "/memory.events");
    s.mem_failcnt = get(events, "max");
    s.mem_oom_kills = get(events, "oom_kill");
    s.mem_stat = read_keyed(d + "/memory.stat");
    s.mem_inactive_file = get(s.mem_stat, "inactive_file");
    s.mem_rss = get(s.mem_stat, "anon");
    s.mem_cache = get(s.mem_stat, "file");
    s.pids_current = read_u64(d + "/pids.current");
    uint64_t pids_max = read_u64(d + "/pids.max", kNoLimit);
    s.pids_limit = pids_max == kNoLimit ? 0 : pids_max;
    return s;
  }
  if (version_ != 1) return s;
  std::string acct = dir(path, "cpuacct");
  s.cpu_usage_usec = read_u64(acct + "/cpuacct.usage") / 1000;
  // cpuacct.stat counts USER_HZ ticks.
  long hz = ::sysconf(_SC_CLK_TCK);
  if (hz <= 0) hz = 100;
  auto acct_stat = read_keyed(acct + "/cpuacct.stat");
  s.cpu_user_usec = get(acct_stat, "user") * 1000000 / static_cast<uint64_t>(hz);
  s.cpu_system_usec = get(acct_stat, "system") * 1000000 / static_cast<uint64_t>(hz);
  {
    std::ifstream in(acct + "/cpuacct.usage_percpu");
    uint64_t v;
    while (in >> v) s.cpu_percpu_nsec.push_back(v);
  }
  auto cpu = read_keyed(dir(path, "cpu") + "/cpu.stat");
  s.cpu_nr_periods = get(cpu, "nr_periods");
  s.cpu_nr_throttled = get(cpu, "nr_throttled");
  s.cpu_throttled_usec = get(cpu, "throttled_time") / 1000;

  std::string mem = dir(path, "memory");
  s.mem_usage = read_u64(mem + "/memory.usage_in_bytes");
  s.mem_limit = read_u64(mem + "/memory.limit_in_bytes", kNoLimit);
  s.mem_max_usage = read_u64(mem + "/memory.max_usage_in_bytes");
  s.mem_failcnt = read_u64(mem + "/memory.failcnt");
  uint64_t memsw = read_u64(mem + "/memory.memsw.usage_in_bytes");
  s.mem_swap_usage = memsw > s.mem_usage ? memsw - s.mem_usage : 0;
  s.mem_swap_limit = read_u64(mem + "/memory.memsw.limit_in_bytes", kNoLimit);
  s.mem_oom_kills = get(read_keyed(mem + "/memory.oom_control"), "oom_kill");
  s.mem_stat = read_keyed(mem + "/memory.stat");
  s.mem_inactive_file = get(s.mem_stat, "total_inactive_file");
  s.mem_rss = get(s.mem_stat, "total_rss");
  s.mem_cache = get(s.mem_stat, "total_cache");

  std::string pids = dir(path, "pids");
  s.pids_current = read_u64(pids + "/pids.current");
  uint64_t pids_max = read_u64(pids + "/pids.max", kNoLimit);
  s.pids_limit = pids_max == kNoLimit ? 0 : pids_max;
  return s;
}

uint64_t Cgroups::oom_kills(const std::string& path) const {
  if (version_ == 2) return get(read_keyed(dir(path) + "/memory.events"), "oom_kill");
  if (version_ == 1)
    return get(read_keyed(dir(path, "memory") + "/memory.oom_control"), "oom_kill");
  return 0;
}

MemorySample Cgroups::memory_sample(const std::string& path) const {
  MemorySample m;
  std::map<std::string, uint64_t> stat;
  std::string prefix;  // v1 has the hierarchical figures under total_
  if (version_ == 2) {
    std::string d = dir(path);
    auto events = read_keyed(d + "/memory.events");
    if (events.empty()) return m;
    m.limit = read_u64(d + "/memory.max", kNoLimit);
    m.usage = read_u64(d + "/memory.current");
    m.limit_hits = get(events, "max");
    m.oom_kills = get(events, "oom_kill");
    stat = read_keyed(d + "/memory.stat");
  } else if (version_ == 1) {
    std::string mem = dir(path, "memory");
    if (mem.empty()) return m;
    stat = read_keyed(mem + "/memory.stat");
    if (stat.empty()) return m;
    m.limit = read_u64(mem + "/memory.limit_in_bytes", kNoLimit);
    m.usage = read_u64(mem + "/memory.usage_in_bytes");
    m.limit_hits = read_u64(mem + "/memory.failcnt");
    m.oom_kills = get(read_keyed(mem + "/memory.oom_control"), "oom_kill");
    prefix = "total_";
  } else {
    return m;
  }
  // Linux >= 5.9 splits the counter into _file and _anon; older kernels have
  // one; without either, major faults are the closest figure.
  if (stat.count(prefix + "workingset_refault_file")) {
    m.refaults = get(stat, prefix + "workingset_refault_file") +
                 get(stat, prefix + "workingset_refault_anon");
  } else if (stat.count(prefix + "workingset_refault")) {
    m.refaults = get(stat, prefix + "workingset_refault");
  } else {
    m.refaults = get(stat, prefix + "pgmajfault");
  }
  m.valid = true;
  return m;
}

std::vector<pid_t> Cgroups::pids(const std::string& path) const {
  std::vector<pid_t> out;
  // v1: the pids (or memory) hierarchy has every process of the container.
  std::string d =
      version_ == 2 ? dir(path) : dir(path, v1_mounts_.count("pids") ? "pids" : "memory");
  if (!d.empty()) collect_pids(d, out);
  return out;
}

std::vector<std::string> Cgroups::remove(const std::string& path) const {
  std::vector<std::string> failed;
  if (path.empty() || path == "/") return failed;
  if (version_ == 2) {
    if (!remove_cgroup_dir(dir(path))) failed.push_back(dir(path));
    return failed;
  }
  std::map<std::string, bool> seen;
  for (const auto& [controller, mount] : v1_mounts_) {
    if (seen[mount]) continue;
    seen[mount] = true;
    std::string d = join(mount, path);
    if (!remove_cgroup_dir(d)) failed.push_back(d);
  }
  return failed;
}

common::UniqueFd Cgroups::oom_notifier(const std::string& path) const {
  if (version_ == 2) {
    std::string events = dir(path) + "/memory.events";
    common::UniqueFd fd(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    if (!fd) common::throw_errno("inotify_init1 for " + events);
    if (::inotify_add_watch(fd.get(), events.c_str(), IN_MODIFY) < 0)
      common::throw_errno("watch " + events);
    return fd;
  }
  if (version_ != 1) throw common::Error("no memory cgroup to watch for OOM kills");
  // cgroup v1 memory notification API: "<eventfd> <fd of memory.oom_control>"
  // written to cgroup.event_control (Documentation/admin-guide/cgroup-v1/memory.rst §9).
  std::string mem = dir(path, "memory");
  common::UniqueFd efd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!efd) common::throw_errno("eventfd for " + mem);
  common::UniqueFd control(::open((mem + "/memory.oom_control").c_str(), O_RDONLY | O_CLOEXEC));
  if (!control) common::throw_errno("open " + mem + "/memory.oom_control");
  common::UniqueFd event_control(
      ::open((mem + "/cgroup.event_control").c_str(), O_WRONLY | O_CLOEXEC));
  if (!event_control) common::throw_errno("open " + mem + "/cgroup.event_control");
  std::string line = std::to_string(efd.get()) + " " + std::to_string(control.get());
  if (::write(event_control.get(), line.data(), line.size()) < 0) {
    common::throw_errno("register OOM eventfd in " + mem + "/cgroup.event_control");
  }
  return efd;
}

void Cgroups::drain_notifier(int fd) {
  char buf[4096];
  while (::read(fd, buf, sizeof buf) > 0) {
  }
}

}  // namespace ember::agent
