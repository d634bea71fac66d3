#include "guest-agent/agent/container_manager.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "guest-agent/agent/spec_adapter.h"
#include "vmm/common/error.h"

namespace ember::agent {

// ---------------------------------------------------------------------------

struct ContainerManager::Process {
  std::string exec_id;  // "" = init
  ProcessStatus status = ProcessStatus::kCreated;
  bool starting = false;
  StdioSpec stdio;
  pid_t pid = 0;
  std::string spec_path;  // exec: the process.json

  // Until the process runs: the child's ends of its pipes, or the console
  // socket crun connects to with the pty master.
  common::UniqueFd child_in, child_out, child_err;
  common::UniqueFd console_listener;
  std::unique_ptr<FdWatch> console_watch;
  std::string console_path;
  common::UniqueFd pty_master;
  bool resized_before_pty = false;  // stdio.width/height came from ResizePty

  std::unique_ptr<InputPump> stdin_pump;
  std::unique_ptr<OutputPump> stdout_pump, stderr_pump;
  // Connections that arrived before the pumps (terminal exec before start).
  common::UniqueFd pending_stdin, pending_stdout;

  bool reaped = false;
  bool released = false;
  uint32_t exit_status = 0;
  std::chrono::system_clock::time_point exited_at;
  bool oom_killed = false;
  uint64_t oom_kills_at_start = 0;
  std::vector<Done<ExitInfo>> waiters;

  ExitInfo exit_info() const {
    return {static_cast<uint32_t>(pid), exit_status, exited_at, oom_killed};
  }
  bool outputs_done() const {
    return (!stdout_pump || stdout_pump->done()) && (!stderr_pump || stderr_pump->done());
  }
};

struct ContainerManager::Container {
  std::string id;
  std::string dir;  // the bundle: config.json, rootfs/, mnt/
  std::string cgroup_path;
  RootfsMount rootfs;
  std::unique_ptr<Process> init;
  std::map<std::string, std::unique_ptr<Process>> execs;
  common::UniqueFd oom_fd;
  std::unique_ptr<FdWatch> oom_watch;
  uint64_t oom_reported = 0;  // oom_kill count already turned into events
  MemoryThrashWatch thrash;
  bool creating = false;  // crun create is running
  bool created = false;   // crun create succeeded
  bool deleting = false;
};

// ---------------------------------------------------------------------------

namespace {

std::string code_text(const std::string& id, const std::string& exec_id) {
  return exec_id.empty() ? "container " + id : "process " + exec_id + " of container " + id;
}

void write_file(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << content;
    out.flush();
    if (!out) throw common::Error("write " + tmp + ": " + common::errno_text(errno));
  }
  if (::rename(tmp.c_str(), path.c_str()) < 0) common::throw_errno("rename " + tmp + " to " + path);
}

pid_t read_pid_file(const std::string& path) {
  std::ifstream in(path);
  long pid = 0;
  if (!(in >> pid) || pid <= 0) throw common::Error("read pid file " + path + ": no pid in it");
  return static_cast<pid_t>(pid);
}

std::pair<common::UniqueFd, common::UniqueFd> make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) < 0) common::throw_errno("pipe2");
  return {common::UniqueFd(fds[0]), common::UniqueFd(fds[1])};
}

common::UniqueFd listen_unix_socket(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path)
    throw common::Error("console socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  common::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) common::throw_errno("socket for " + path);
  ::unlink(path.c_str());
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0)
    common::throw_errno("bind " + path);
  if (::listen(fd.get(), 1) < 0) common::throw_errno("listen on " + path);
  return fd;
}

// Receives one fd sent with SCM_RIGHTS (crun's --console-socket protocol).
common::UniqueFd receive_fd(int listener, const std::string& path) {
  common::UniqueFd conn(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
  if (!conn) common::throw_errno("accept the pty from crun on " + path);
  char data[256];
  iovec iov{data, sizeof data};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  while ((n = ::recvmsg(conn.get(), &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
  }
  if (n < 0) common::throw_errno("receive the pty from crun on " + path);
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
        c->cmsg_len >= CMSG_LEN(sizeof(int))) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
      return common::UniqueFd(fd);
    }
  }
  throw common::Error("crun sent no pty over " + path);
}

void set_window_size(int fd, uint32_t width, uint32_t height) {
  winsize ws{};
  ws.ws_col = static_cast<unsigned short>(width);
  ws.ws_row = static_cast<unsigned short>(height);
  if (::ioctl(fd, TIOCSWINSZ, &ws) < 0) common::throw_errno("set the terminal size");
}

common::UniqueFd dup_fd(int fd) {
  common::UniqueFd d(::fcntl(fd, F_DUPFD_CLOEXEC, 3));
  if (!d) common::throw_errno("dup fd " + std::to_string(fd));
  return d;
}

bool path_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

template <class T>
void fail(Done<T>& done, ErrorKind kind, const std::string& message) {
  done(Result<T>::failure(std::make_exception_ptr(AgentError(kind, message))));
}

}  // namespace

void validate_id(const std::string& id, const std::string& what) {
  bool ok = !id.empty() && id.size() <= 128 && id[0] != '.' && id[0] != '-';
  for (char ch : id) {
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '.' || ch == '-'))
      ok = false;
  }
  if (!ok) {
    throw AgentError(ErrorKind::kInvalidArgument,
                     "invalid " + what + " \"" + id + "\": use 1-128 characters of [A-Za-z0-9_.-]");
  }
}

uint32_t exit_status_from_wait(int wait_status) {
  if (WIFSIGNALED(wait_status)) return 128 + static_cast<uint32_t>(WTERMSIG(wait_status));
  if (WIFEXITED(wait_status)) return static_cast<uint32_t>(WEXITSTATUS(wait_status));
  return 255;
}

// ---------------------------------------------------------------------------

ContainerManager::ContainerManager(common::EventLoop& loop, Reaper& reaper, AgentLog& log,
                                   Cgroups cgroups, EventQueue& events, Config config)
    : loop_(loop),
      reaper_(reaper),
      log_(log),
      cgroups_(std::move(cgroups)),
      events_(events),
      config_(std::move(config)),
      crun_(
          [&] {
            Crun::Options o = config_.crun;
            o.state_dir = config_.root_dir + "/crun";
            o.log_dir = config_.root_dir + "/log";
            return o;
          }(),
          reaper, log),
      health_timer_(loop, [this] { health_check(); }) {
  reaper_.set_lost_handler([this](pid_t pid) { on_lost(pid); });
  make_dirs(config_.root_dir + "/containers");
  make_dirs(config_.root_dir + "/crun");
  make_dirs(config_.root_dir + "/log");
  make_dirs(config_.root_dir + "/s");
  has_apparmor_ = path_exists("/sys/kernel/security/apparmor");
  has_selinux_ = path_exists("/sys/fs/selinux/enforce");
}

ContainerManager::~ContainerManager() {
  reaper_.set_lost_handler({});
  for (auto& [id, c] : containers_) {
    if (c->init && c->init->pid > 0) reaper_.unwatch(c->init->pid);
    for (auto& [eid, p] : c->execs) {
      if (p->pid > 0) reaper_.unwatch(p->pid);
    }
  }
}

ContainerManager::Container* ContainerManager::lookup_container(const std::string& id) const {
  auto it = containers_.find(id);
  return it == containers_.end() ? nullptr : it->second.get();
}

ContainerManager::Process* ContainerManager::lookup_process(const std::string& id,
                                                            const std::string& exec_id) const {
  Container* c = lookup_container(id);
  if (!c) return nullptr;
  if (exec_id.empty()) return c->init.get();
  auto it = c->execs.find(exec_id);
  return it == c->execs.end() ? nullptr : it->second.get();
}

ContainerManager::Container& ContainerManager::find_container(const std::string& id) const {
  Container* c = lookup_container(id);
  if (!c || c->deleting) throw AgentError(ErrorKind::kNotFound, "container " + id + " not found");
  return *c;
}

ContainerManager::Process& ContainerManager::find_process(const std::string& id,
                                                          const std::string& exec_id) const {
  find_container(id);
  Process* p = lookup_process(id, exec_id);
  if (!p) throw AgentError(ErrorKind::kNotFound, code_text(id, exec_id) + " not found");
  return *p;
}

std::optional<std::string> ContainerManager::sandbox_namespace(const std::string& sandbox_id,
                                                               const std::string& type) const {
  static const std::map<std::string, std::string> kProcName = {
      {"ipc", "ipc"},   {"uts", "uts"},   {"pid", "pid"},
      {"mount", "mnt"}, {"user", "user"}, {"cgroup", "cgroup"}};
  auto name = kProcName.find(type);
  if (name == kProcName.end()) return std::nullopt;
  Container* s = lookup_container(sandbox_id);
  if (!s || !s->init || s->init->pid <= 0 || s->init->reaped) return std::nullopt;
  return "/proc/" + std::to_string(s->init->pid) + "/ns/" + name->second;
}

// --- stdio ------------------------------------------------------------------

void ContainerManager::prepare_stdio(Container& c, Process& p) {
  (void)c;
  if (p.stdio.terminal) {
    p.console_path = config_.root_dir + "/s/" + std::to_string(next_socket_++) + ".sock";
    p.console_listener = listen_unix_socket(p.console_path);
    return;
  }
  common::UniqueFd in, out, err;
  if (p.stdio.want_stdin) std::tie(p.child_in, in) = make_pipe();
  if (p.stdio.want_stdout) std::tie(out, p.child_out) = make_pipe();
  if (p.stdio.want_stderr) std::tie(err, p.child_err) = make_pipe();
  make_pumps(c, p, std::move(in), std::move(out), std::move(err));
}

void ContainerManager::make_pumps(Container& c, Process& p, common::UniqueFd in,
                                  common::UniqueFd out, common::UniqueFd err) {
  std::string id = c.id, eid = p.exec_id;
  auto on_done = [this, id, eid] { on_output_done(id, eid); };
  if (in) {
    p.stdin_pump = std::make_unique<InputPump>(loop_, std::move(in), p.stdio.terminal);
    if (p.pending_stdin) p.stdin_pump->attach(std::move(p.pending_stdin));
  }
  if (out) {
    p.stdout_pump = std::make_unique<OutputPump>(loop_, std::move(out), config_.timing, on_done);
    if (p.pending_stdout) p.stdout_pump->attach(std::move(p.pending_stdout));
  }
  if (err)
    p.stderr_pump = std::make_unique<OutputPump>(loop_, std::move(err), config_.timing, on_done);
}

void ContainerManager::receive_console(Container& c, Process& p) {
  common::UniqueFd master = receive_fd(p.console_listener.get(), p.console_path);
  p.console_watch.reset();
  p.console_listener.reset();
  ::unlink(p.console_path.c_str());
  if ((p.stdio.width && p.stdio.height) || p.resized_before_pty)
    set_window_size(master.get(), p.stdio.width, p.stdio.height);
  common::UniqueFd in = p.stdio.want_stdin ? dup_fd(master.get()) : common::UniqueFd();
  common::UniqueFd out = p.stdio.want_stdout ? dup_fd(master.get()) : common::UniqueFd();
  p.pty_master = std::move(master);
  make_pumps(c, p, std::move(in), std::move(out), {});
}

void ContainerManager::attach_stream(const std::string& id, const std::string& exec_id,
                                     StreamKind kind, common::UniqueFd& conn,
                                     const std::function<void(int)>& accepted) {
  Process& p = find_process(id, exec_id);
  std::string what = code_text(id, exec_id);
  if (p.released) throw AgentError(ErrorKind::kFailedPrecondition, what + " has already exited");
  auto busy = [&](const char* name) {
    return AgentError(ErrorKind::kAlreadyExists,
                      std::string(name) + " of " + what + " is already attached or closed");
  };
  switch (kind) {
    case StreamKind::kStdin:
      if (!p.stdio.want_stdin)
        throw AgentError(ErrorKind::kFailedPrecondition, what + " was created without stdin");
      if (p.stdin_pump ? (p.stdin_pump->attached() || p.stdin_pump->closed())
                       : p.pending_stdin.valid()) {
        throw busy("stdin");
      }
      if (p.reaped) throw AgentError(ErrorKind::kFailedPrecondition, what + " has already exited");
      accepted(conn.get());
      if (p.stdin_pump) {
        p.stdin_pump->attach(std::move(conn));
      } else {
        p.pending_stdin = std::move(conn);
      }
      return;
    case StreamKind::kStdout:
      if (!p.stdio.want_stdout)
        throw AgentError(ErrorKind::kFailedPrecondition, what + " was created without stdout");
      if (p.stdout_pump ? (p.stdout_pump->attached() || p.stdout_pump->done())
                        : p.pending_stdout.valid()) {
        throw busy("stdout");
      }
      accepted(conn.get());
      if (p.stdout_pump) {
        p.stdout_pump->attach(std::move(conn));
      } else {
        p.pending_stdout = std::move(conn);
      }
      return;
    case StreamKind::kStderr:
      if (!p.stdio.want_stderr || p.stdio.terminal) {
        throw AgentError(ErrorKind::kFailedPrecondition, what + " has no separate stderr");
      }
      if (!p.stderr_pump || p.stderr_pump->attached() || p.stderr_pump->done())
        throw busy("stderr");
      accepted(conn.get());
      p.stderr_pump->attach(std::move(conn));
      return;
  }
}

// --- create -----------------------------------------------------------------

void ContainerManager::create(CreateParams params, Done<uint32_t> done) {
  const std::string id = params.container_id;
  validate_id(id, "container id");
  if (containers_.count(id))
    throw AgentError(ErrorKind::kAlreadyExists, "container " + id + " already exists");
  if (params.stdio.terminal && params.stdio.want_stderr) {
    throw AgentError(ErrorKind::kInvalidArgument,
                     "container " + id + ": a terminal has no separate stderr");
  }

  auto owned = std::make_unique<Container>();
  Container& c = *owned;
  c.id = id;
  c.dir = config_.root_dir + "/containers/" + id;
  c.cgroup_path = config_.cgroup_parent + "/" + id;
  c.init = std::make_unique<Process>();
  c.init->stdio = params.stdio;

  // A bundle left behind by an earlier agent run: start afresh.
  if (path_exists(c.dir) && !remove_tree(c.dir)) {
    throw AgentError(ErrorKind::kInternal,
                     "container " + id + ": stale bundle " + c.dir + " cannot be removed");
  }
  make_dirs(c.dir);
  containers_[id] = std::move(owned);
  c.thrash = MemoryThrashWatch(config_.thrash);
  arm_health_check();

  c.creating = true;
  uint64_t since = reaper_.mark();
  try {
    c.rootfs = RootfsMount::mount(params.rootfs, c.dir + "/mnt", c.dir + "/rootfs");

    SpecAdaptOptions o;
    o.rootfs_path = c.dir + "/rootfs";
    o.readonly_root = params.rootfs.readonly;
    o.cgroups_path = c.cgroup_path;
    o.terminal = params.stdio.terminal;
    o.width = params.stdio.width;
    o.height = params.stdio.height;
    o.has_apparmor = has_apparmor_;
    o.has_selinux = has_selinux_;
    o.path_exists = path_exists;
    std::string sandbox_id;
    try {
      auto spec = nlohmann::json::parse(params.spec_json);
      sandbox_id = spec.at("annotations").value("io.kubernetes.cri.sandbox-id", "");
    } catch (...) {
    }
    if (!sandbox_id.empty() && sandbox_id != id) {
      o.sandbox_namespace = [this, sandbox_id](const std::string& type) {
        return sandbox_namespace(sandbox_id, type);
      };
    }
    AdaptedSpec adapted;
    try {
      adapted = adapt_container_spec(params.spec_json, o);
    } catch (const common::Error& e) {
      throw AgentError(ErrorKind::kInvalidArgument, "container " + id + ": " + e.what());
    }
    for (const auto& note : adapted.notes) log_.info("container " + id + ": " + note);
    write_file(c.dir + "/config.json", adapted.spec.dump());

    prepare_stdio(c, *c.init);
    std::vector<std::string> args = {"create", "--bundle", c.dir, "--pid-file",
                                     c.dir + "/init.pid"};
    if (params.stdio.terminal) args.push_back("--console-socket=" + c.init->console_path);
    args.push_back(id);
    crun_.run(args, {c.init->child_in.get(), c.init->child_out.get(), c.init->child_err.get()},
              [this, id, since, done](Crun::Result result) mutable {
                finish_create(id, std::move(result), since, std::move(done));
              });
    // crun and the container hold the child ends now.
    c.init->child_in.reset();
    c.init->child_out.reset();
    c.init->child_err.reset();
  } catch (...) {
    std::string errors = cleanup(c);
    if (!errors.empty()) log_.warn("container " + id + ": cleanup after failed create: " + errors);
    containers_.erase(id);
    throw;
  }
}

void ContainerManager::finish_create(const std::string& id, Crun::Result result, uint64_t since,
                                     Done<uint32_t> done) {
  Container* c = lookup_container(id);
  if (!c) {
    // Removed meanwhile (shutdown): take back what crun just made.
    if (result.ok()) crun_.run({"delete", "--force", id}, {}, [](Crun::Result) {});
    return fail(done, ErrorKind::kNotFound, "container " + id + " went away during create");
  }
  c->creating = false;
  Process& p = *c->init;
  try {
    if (!result.ok()) throw AgentError(ErrorKind::kInternal, result.describe("crun create " + id));
    c->created = true;
    p.pid = read_pid_file(c->dir + "/init.pid");
    watch_exit(*c, p, since);
    if (p.stdio.terminal) receive_console(*c, p);
    start_oom_watch(*c);
    p.oom_kills_at_start = c->oom_reported;
  } catch (...) {
    auto error = std::current_exception();
    auto finish = [this, id, error, done]() mutable {
      if (Container* c2 = lookup_container(id)) {
        std::string errors = cleanup(*c2);
        if (!errors.empty())
          log_.warn("container " + id + ": cleanup after failed create: " + errors);
        containers_.erase(id);
      }
      done(Result<uint32_t>::failure(error));
    };
    if (c->created) {
      // The init exists: crun removes it (and its cgroup) again.
      crun_.run({"delete", "--force", id}, {}, [finish](Crun::Result) mutable { finish(); });
    } else {
      finish();
    }
    return;
  }
  log_.info("container " + id + " created, init pid " + std::to_string(p.pid));
  done(static_cast<uint32_t>(p.pid));
}

void ContainerManager::watch_exit(Container& c, Process& p, uint64_t since) {
  std::string id = c.id, eid = p.exec_id;
  reaper_.watch(
      p.pid, [this, id, eid](int status) { on_reaped(id, eid, status); }, since);
}

void ContainerManager::start_oom_watch(Container& c) {
  c.oom_reported = cgroups_.oom_kills(c.cgroup_path);
  try {
    c.oom_fd = cgroups_.oom_notifier(c.cgroup_path);
  } catch (const std::exception& e) {
    log_.warn("container " + c.id + ": no OOM notifications (" + e.what() +
              "); OOM kills are still seen at exit");
    return;
  }
  std::string id = c.id;
  c.oom_watch = std::make_unique<FdWatch>(loop_, c.oom_fd.get(), [this, id](uint32_t) {
    Container* c2 = lookup_container(id);
    if (!c2) return;
    Cgroups::drain_notifier(c2->oom_fd.get());
    check_oom(*c2);
  });
  c.oom_watch->set(EPOLLIN);
}

void ContainerManager::check_oom(Container& c) {
  uint64_t kills = cgroups_.oom_kills(c.cgroup_path);
  if (kills <= c.oom_reported) return;
  c.oom_reported = kills;
  AgentEvent e;
  e.kind = AgentEvent::Kind::kOom;
  e.container_id = c.id;
  uint64_t seq = events_.push(e);
  log_.info("container " + c.id + ": OOM kill (event " + std::to_string(seq) + ", " +
            std::to_string(kills) + " in total)");
}

// --- health -----------------------------------------------------------------

void ContainerManager::arm_health_check() {
  if (!health_timer_.armed() && config_.health_interval.count() > 0)
    health_timer_.arm(config_.health_interval);
}

void ContainerManager::health_check() {
  // Lost exits are reported through posted callbacks (on_reaped), so the
  // containers can be walked safely afterwards.
  reaper_.audit();
  for (auto& [id, c] : containers_) {
    if (c->deleting || !c->created) continue;
    check_oom(*c);
    if (c->init && c->init->status == ProcessStatus::kRunning && !c->init->reaped) check_memory(*c);
  }
  if (!containers_.empty()) arm_health_check();
}

void ContainerManager::check_memory(Container& c) {
  MemorySample sample = cgroups_.memory_sample(c.cgroup_path);
  auto r = c.thrash.update(sample, std::chrono::steady_clock::now());
  if (r.change == MemoryThrashWatch::Change::kNone) return;
  static const uint64_t kPage = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  auto mib = [](uint64_t bytes) {
    std::ostringstream out;
    out.precision(1);
    out << std::fixed << static_cast<double>(bytes) / (1 << 20) << " MiB";
    return out.str();
  };
  auto secs = [](std::chrono::milliseconds ms) {
    std::ostringstream out;
    out.precision(ms.count() < 10000 ? 1 : 0);
    out << std::fixed << static_cast<double>(ms.count()) / 1000 << " s";
    return out.str();
  };
  std::string limit = sample.limit >= (uint64_t{1} << 62) ? "its limit" : mib(sample.limit);
  switch (r.change) {
    case MemoryThrashWatch::Change::kStarted:
    case MemoryThrashWatch::Change::kContinues:
      log_.warn("container " + c.id + " is thrashing at its memory limit (" + limit + ", " +
                mib(sample.usage) + " in use) for " + secs(r.duration) + ": " +
                mib(r.refaults * kPage) + " evicted and read back in the last " + secs(r.interval) +
                (r.limit_hits ? ", limit hit " + std::to_string(r.limit_hits) + " times" : "") +
                ", no OOM kill. Reclaim keeps evicting the container's own file pages, "
                "so the kernel may never OOM-kill it; it runs (slowly or not at all) until it "
                "exits or is killed, and WaitProcess waits for that");
      return;
    case MemoryThrashWatch::Change::kEnded:
      log_.info("container " + c.id + " stopped thrashing after " + secs(r.duration) + " (" +
                mib(r.episode_refaults * kPage) + " read back in all)");
      return;
    case MemoryThrashWatch::Change::kNone:
      return;
  }
}

void ContainerManager::on_lost(pid_t pid) {
  std::string what = "pid " + std::to_string(pid);
  for (auto& [id, c] : containers_) {
    if (c->init && c->init->pid == pid) what = code_text(id, "") + " (" + what + ")";
    for (auto& [eid, p] : c->execs) {
      if (p->pid == pid) what = code_text(id, eid) + " (" + what + ")";
    }
  }
  log_.error(what +
             ": exit status lost (not a child of the agent any more, nothing to reap); "
             "reported as exited 255 so nobody waits for it forever");
}

// --- start / exec -----------------------------------------------------------

void ContainerManager::start(const std::string& id, const std::string& exec_id,
                             Done<uint32_t> done) {
  Container& c = find_container(id);
  Process& p = find_process(id, exec_id);
  std::string what = code_text(id, exec_id);
  if (p.status != ProcessStatus::kCreated || p.starting || p.reaped || !c.created) {
    throw AgentError(ErrorKind::kFailedPrecondition,
                     what + " cannot be started: it is not in the created state");
  }
  p.starting = true;
  if (exec_id.empty()) {
    crun_.run({"start", id}, {}, [this, id, done](Crun::Result result) mutable {
      Process* p2 = lookup_process(id, "");
      if (!p2)
        return fail(done, ErrorKind::kNotFound, "container " + id + " went away during start");
      p2->starting = false;
      if (!result.ok()) {
        return fail(done, ErrorKind::kInternal, result.describe("crun start " + id));
      }
      if (p2->status == ProcessStatus::kCreated) p2->status = ProcessStatus::kRunning;
      log_.info("container " + id + " started");
      done(static_cast<uint32_t>(p2->pid));
    });
    return;
  }

  if (!c.init || c.init->reaped || c.init->status != ProcessStatus::kRunning) {
    p.starting = false;
    throw AgentError(ErrorKind::kFailedPrecondition,
                     what + " cannot be started: the container is not running");
  }
  uint64_t since = reaper_.mark();
  try {
    if (p.stdio.terminal) {
      prepare_stdio(c, p);  // (pipes exist since ExecProcess)
      // crun 1.8 does not apply process.consoleSize to exec processes: take
      // the pty the moment crun hands it over and size it, which is nearly
      // always before the new process looks at it.
      p.console_watch =
          std::make_unique<FdWatch>(loop_, p.console_listener.get(), [this, id, exec_id](uint32_t) {
            Container* c2 = lookup_container(id);
            Process* p2 = lookup_process(id, exec_id);
            if (!c2 || !p2 || !p2->console_listener) return;
            try {
              receive_console(*c2, *p2);
            } catch (const std::exception& e) {
              log_.debug(code_text(id, exec_id) + ": early pty hand-over: " + e.what());
            }
          });
      p.console_watch->set(EPOLLIN);
    }
    std::string pid_file = c.dir + "/exec-" + exec_id + ".pid";
    ::unlink(pid_file.c_str());
    std::vector<std::string> args = {"exec",   "--detach",  "--pid-file",
                                     pid_file, "--process", p.spec_path};
    if (p.stdio.terminal) args.push_back("--console-socket=" + p.console_path);
    args.push_back(id);
    crun_.run(args, {p.child_in.get(), p.child_out.get(), p.child_err.get()},
              [this, id, exec_id, since, done](Crun::Result result) mutable {
                finish_exec_start(id, exec_id, std::move(result), since, std::move(done));
              });
  } catch (...) {
    p.starting = false;
    throw;
  }
  p.child_in.reset();
  p.child_out.reset();
  p.child_err.reset();
}

void ContainerManager::finish_exec_start(const std::string& id, const std::string& exec_id,
                                         Crun::Result result, uint64_t since, Done<uint32_t> done) {
  Container* c = lookup_container(id);
  Process* p = lookup_process(id, exec_id);
  if (!c || !p)
    return fail(done, ErrorKind::kNotFound, code_text(id, exec_id) + " went away during start");
  p->starting = false;
  try {
    if (!result.ok())
      throw AgentError(ErrorKind::kInternal, result.describe("crun exec " + exec_id + " in " + id));
    p->pid = read_pid_file(c->dir + "/exec-" + exec_id + ".pid");
    p->oom_kills_at_start = c->oom_reported;
    if (p->status == ProcessStatus::kCreated) p->status = ProcessStatus::kRunning;
    watch_exit(*c, *p, since);
    if (p->stdio.terminal && !p->pty_master) receive_console(*c, *p);
  } catch (...) {
    // The exec never ran (or we lost its terminal): it counts as exited
    // with 255 so a waiter is not left hanging.
    auto error = std::current_exception();
    if (p->pid > 0) {
      ::kill(p->pid, SIGKILL);  // reaped through watch_exit
    } else {
      p->status = ProcessStatus::kStopped;
      p->reaped = true;
      p->exit_status = 255;
      p->exited_at = std::chrono::system_clock::now();
      if (p->stdout_pump) p->stdout_pump->process_exited();
      if (p->stderr_pump) p->stderr_pump->process_exited();
      p->console_watch.reset();
      p->console_listener.reset();
      if (!p->console_path.empty()) ::unlink(p->console_path.c_str());
      // The pipes have no writer left: the pumps see EOF once attached, or
      // give up after the attach timeout.
      try_release(*c, *p);
    }
    done(Result<uint32_t>::failure(error));
    return;
  }
  log_.info(code_text(id, exec_id) + " started, pid " + std::to_string(p->pid));
  done(static_cast<uint32_t>(p->pid));
}

void ContainerManager::exec(ExecParams params) {
  const std::string& id = params.container_id;
  validate_id(params.exec_id, "exec id");
  Container& c = find_container(id);
  if (c.execs.count(params.exec_id)) {
    throw AgentError(ErrorKind::kAlreadyExists, code_text(id, params.exec_id) + " already exists");
  }
  if (!c.init || c.init->reaped) {
    throw AgentError(ErrorKind::kFailedPrecondition, "container " + id + " is not running");
  }
  if (params.stdio.terminal && params.stdio.want_stderr) {
    throw AgentError(ErrorKind::kInvalidArgument,
                     code_text(id, params.exec_id) + ": a terminal has no separate stderr");
  }
  SpecAdaptOptions o;
  o.terminal = params.stdio.terminal;
  o.width = params.stdio.width;
  o.height = params.stdio.height;
  o.has_apparmor = has_apparmor_;
  o.has_selinux = has_selinux_;
  nlohmann::json process;
  try {
    process = adapt_process_spec(params.process_json, o);
  } catch (const common::Error& e) {
    throw AgentError(ErrorKind::kInvalidArgument, code_text(id, params.exec_id) + ": " + e.what());
  }
  auto p = std::make_unique<Process>();
  p->exec_id = params.exec_id;
  p->stdio = params.stdio;
  p->spec_path = c.dir + "/exec-" + params.exec_id + ".json";
  write_file(p->spec_path, process.dump());
  // Pipes exist from now on so the host can attach before StartProcess; a
  // terminal only comes with crun exec.
  if (!p->stdio.terminal) prepare_stdio(c, *p);
  c.execs[params.exec_id] = std::move(p);
  log_.info(code_text(id, params.exec_id) + " registered");
}

// --- exits ------------------------------------------------------------------

void ContainerManager::on_reaped(const std::string& id, const std::string& exec_id,
                                 int wait_status) {
  Container* c = lookup_container(id);
  Process* p = lookup_process(id, exec_id);
  if (!c || !p) return;
  p->reaped = true;
  p->status = ProcessStatus::kStopped;
  p->exit_status = exit_status_from_wait(wait_status);
  p->exited_at = std::chrono::system_clock::now();
  // The kernel counts the OOM kill before the victim can be reaped, so this
  // read sees it; the OOM event is queued ahead of the exit.
  check_oom(*c);
  p->oom_killed = c->oom_reported > p->oom_kills_at_start;
  log_.info(code_text(id, exec_id) + " (pid " + std::to_string(p->pid) + ") exited with status " +
            std::to_string(p->exit_status) + (p->oom_killed ? " after an OOM kill" : ""));
  if (p->stdin_pump) p->stdin_pump->close();
  p->pending_stdin.reset();
  if (p->stdout_pump) p->stdout_pump->process_exited();
  if (p->stderr_pump) p->stderr_pump->process_exited();
  try_release(*c, *p);
}

void ContainerManager::on_output_done(const std::string& id, const std::string& exec_id) {
  Container* c = lookup_container(id);
  Process* p = lookup_process(id, exec_id);
  if (c && p) try_release(*c, *p);
}

void ContainerManager::try_release(Container& c, Process& p) {
  if (!p.reaped || p.released || !p.outputs_done()) return;
  p.released = true;
  p.pending_stdout.reset();
  AgentEvent e;
  e.kind = AgentEvent::Kind::kExit;
  e.container_id = c.id;
  e.exec_id = p.exec_id;
  e.pid = static_cast<uint32_t>(p.pid);
  e.exit_status = p.exit_status;
  e.exited_at = p.exited_at;
  e.oom_killed = p.oom_killed;
  events_.push(e);
  auto waiters = std::move(p.waiters);
  p.waiters.clear();
  ExitInfo info = p.exit_info();
  for (auto& w : waiters) w(info);
}

void ContainerManager::wait(const std::string& id, const std::string& exec_id,
                            Done<ExitInfo> done) {
  Process& p = find_process(id, exec_id);
  if (p.released) return done(p.exit_info());
  p.waiters.push_back(std::move(done));
}

ProcessState ContainerManager::state(const std::string& id, const std::string& exec_id) const {
  Container& c = find_container(id);
  Process& p = find_process(id, exec_id);
  ProcessState s;
  s.container_id = id;
  s.exec_id = exec_id;
  s.pid = static_cast<uint32_t>(p.pid);
  // Reaped but still draining output counts as running: the host must not
  // see STOPPED before the last byte.
  s.status = p.released ? ProcessStatus::kStopped : p.reaped ? ProcessStatus::kRunning : p.status;
  s.terminal = p.stdio.terminal;
  s.exit_status = p.released ? p.exit_status : 0;
  s.exited_at = p.exited_at;
  s.bundle = c.dir;
  return s;
}

// --- signals ----------------------------------------------------------------

void ContainerManager::signal(const std::string& id, const std::string& exec_id, int sig, bool all,
                              Done<Unit> done) {
  Process& p = find_process(id, exec_id);
  std::string what = code_text(id, exec_id);
  if (sig <= 0 || sig >= NSIG)
    throw AgentError(ErrorKind::kInvalidArgument, "invalid signal " + std::to_string(sig));
  if (all && !exec_id.empty()) {
    throw AgentError(ErrorKind::kInvalidArgument,
                     "signal to all processes needs the init process (exec id \"\")");
  }
  if (all) {
    // Every process in the container's cgroup, including the ones that
    // outlive the init (no pid namespace of their own).
    crun_.run({"kill", "--all", id, std::to_string(sig)}, {},
              [this, id, sig, done](Crun::Result result) mutable {
                if (!result.ok()) {
                  Process* p2 = lookup_process(id, "");
                  if (!p2 || p2->reaped) {
                    return fail(done, ErrorKind::kNotFound,
                                "container " + id + ": process already finished");
                  }
                  return fail(done, ErrorKind::kInternal, result.describe("crun kill --all " + id));
                }
                log_.info("container " + id + ": signal " + std::to_string(sig) +
                          " sent to all processes");
                done(Unit{});
              });
    return;
  }
  if (p.reaped) throw AgentError(ErrorKind::kNotFound, what + ": process already finished");
  if (p.pid <= 0) throw AgentError(ErrorKind::kFailedPrecondition, what + " has not been started");
  // Safe against pid reuse: the agent reaps this pid itself, and has not yet.
  if (::kill(p.pid, sig) < 0) {
    if (errno == ESRCH) throw AgentError(ErrorKind::kNotFound, what + ": process already finished");
    common::throw_errno("send signal " + std::to_string(sig) + " to " + what);
  }
  log_.info(what + ": signal " + std::to_string(sig) + " sent to pid " + std::to_string(p.pid));
  done(Unit{});
}

// 0x0 is applied like any other size, as containerd's runc shim does
// (TIOCSWINSZ takes it): the terminal then reports no size, and programs fall
// back to their defaults ($COLUMNS/$LINES, 80x24).
void ContainerManager::resize(const std::string& id, const std::string& exec_id, uint32_t width,
                              uint32_t height) {
  Process& p = find_process(id, exec_id);
  if (!p.stdio.terminal) return;  // containerd's shims ignore it too
  if (!p.pty_master) {
    // Not started yet: apply when the terminal arrives.
    p.stdio.width = width;
    p.stdio.height = height;
    p.resized_before_pty = true;
    return;
  }
  set_window_size(p.pty_master.get(), width, height);
}

void ContainerManager::close_stdin(const std::string& id, const std::string& exec_id) {
  Process& p = find_process(id, exec_id);
  if (p.stdin_pump) p.stdin_pump->close();
  p.pending_stdin.reset();
  if (!p.stdin_pump && p.stdio.want_stdin && p.stdio.terminal) {
    // Terminal exec not started yet: it will start without stdin.
    p.stdio.want_stdin = false;
  }
  p.child_in.reset();
}

// --- update / stats / ps ----------------------------------------------------

void ContainerManager::update(const std::string& id, const std::string& resources_json,
                              Done<Unit> done) {
  Container& c = find_container(id);
  try {
    auto j = nlohmann::json::parse(resources_json);
    if (!j.is_object()) throw common::Error("not a JSON object");
  } catch (const std::exception& e) {
    throw AgentError(ErrorKind::kInvalidArgument, "container " + id + ": resources: " + e.what());
  }
  std::string path = c.dir + "/resources.json";
  write_file(path, resources_json);
  crun_.run({"update", "--resources=" + path, id}, {},
            [this, id, done](Crun::Result result) mutable {
              if (!result.ok())
                return fail(done, ErrorKind::kInternal, result.describe("crun update " + id));
              log_.info("container " + id + ": resources updated");
              done(Unit{});
            });
}

CgroupStats ContainerManager::stats(const std::string& id) const {
  return cgroups_.stats(find_container(id).cgroup_path);
}

std::string ContainerManager::cgroup_path(const std::string& id) const {
  return find_container(id).cgroup_path;
}

std::vector<ProcessListEntry> ContainerManager::list_processes(const std::string& id) const {
  Container& c = find_container(id);
  std::map<pid_t, std::string> known;
  if (c.init && c.init->pid > 0 && !c.init->reaped) known[c.init->pid] = "";
  for (auto& [eid, p] : c.execs) {
    if (p->pid > 0 && !p->reaped) known[p->pid] = eid;
  }
  std::vector<ProcessListEntry> out;
  std::set<pid_t> seen;
  for (pid_t pid : cgroups_.pids(c.cgroup_path)) {
    if (!seen.insert(pid).second) continue;
    ProcessListEntry e;
    e.pid = static_cast<uint32_t>(pid);
    if (auto it = known.find(pid); it != known.end()) {
      e.exec_id = it->second;
      e.known = true;
    }
    out.push_back(e);
  }
  return out;
}

// --- delete -----------------------------------------------------------------

std::string ContainerManager::cleanup(Container& c) {
  std::string errors;
  auto note = [&](const std::string& e) { errors += (errors.empty() ? "" : "; ") + e; };
  c.oom_watch.reset();
  c.oom_fd.reset();
  auto drop_process = [&](Process& p) {
    if (p.pid > 0 && !p.reaped) reaper_.unwatch(p.pid);
    if (p.stdout_pump) p.stdout_pump->abort();
    if (p.stderr_pump) p.stderr_pump->abort();
    if (p.stdin_pump) p.stdin_pump->close();
    p.console_watch.reset();
    if (!p.console_path.empty()) ::unlink(p.console_path.c_str());
  };
  if (c.init) drop_process(*c.init);
  for (auto& [eid, p] : c.execs) drop_process(*p);
  try {
    c.rootfs.unmount();
  } catch (const std::exception& e) {
    note(e.what());
  }
  for (const auto& dir : cgroups_.remove(c.cgroup_path)) note("cgroup " + dir + " is not empty");
  if (!remove_tree(c.dir)) note("cannot remove bundle " + c.dir);
  return errors;
}

void ContainerManager::remove(const std::string& id, const std::string& exec_id,
                              Done<ExitInfo> done) {
  Container& c = find_container(id);
  Process& p = find_process(id, exec_id);
  std::string what = code_text(id, exec_id);
  bool never_started = p.status == ProcessStatus::kCreated && !p.starting && !p.reaped;
  if (!exec_id.empty()) {
    if (!p.released && !never_started) {
      throw AgentError(ErrorKind::kFailedPrecondition, what + " is still running");
    }
    ExitInfo info = p.exit_info();
    if (!p.spec_path.empty()) ::unlink(p.spec_path.c_str());
    auto waiters = std::move(p.waiters);
    c.execs.erase(exec_id);
    for (auto& w : waiters) fail(w, ErrorKind::kNotFound, what + " was deleted");
    done(info);
    return;
  }
  if (c.creating)
    throw AgentError(ErrorKind::kFailedPrecondition, what + " is still being created");
  if (!p.reaped && !never_started)
    throw AgentError(ErrorKind::kFailedPrecondition, what + " is still running");
  c.deleting = true;
  auto finish = [this, id, done](Crun::Result result) mutable {
    Container* c2 = lookup_container(id);
    if (!c2) return fail(done, ErrorKind::kNotFound, "container " + id + " not found");
    std::string errors;
    if (!result.ok()) errors = result.describe("crun delete " + id);
    std::string more = cleanup(*c2);
    if (!more.empty()) errors += (errors.empty() ? "" : "; ") + more;
    ExitInfo info = c2->init->exit_info();
    std::vector<Done<ExitInfo>> waiters = std::move(c2->init->waiters);
    for (auto& [eid, p2] : c2->execs) {
      for (auto& w : p2->waiters) waiters.push_back(std::move(w));
    }
    containers_.erase(id);
    for (auto& w : waiters) fail(w, ErrorKind::kNotFound, "container " + id + " was deleted");
    if (!errors.empty()) {
      log_.error("container " + id + " deleted with errors: " + errors);
      return fail(done, ErrorKind::kInternal, "delete container " + id + ": " + errors);
    }
    log_.info("container " + id + " deleted");
    done(info);
  };
  if (!c.created) {
    finish(Crun::Result{});
    return;
  }
  // --force also kills whatever is left in the cgroup (execs of a container
  // without its own pid namespace).
  crun_.run({"delete", "--force", id}, {}, std::move(finish));
}

void ContainerManager::shutdown_all(Done<Unit> done) {
  std::vector<std::string> ids;
  for (auto& [id, c] : containers_) {
    if (!c->deleting) ids.push_back(id);
  }
  if (ids.empty()) return done(Unit{});
  auto remaining = std::make_shared<std::size_t>(ids.size());
  for (const auto& id : ids) {
    Container& c = *containers_[id];
    c.deleting = true;
    auto finish = [this, id, remaining, done](Crun::Result) mutable {
      if (Container* c2 = lookup_container(id)) {
        std::string errors = cleanup(*c2);
        if (!errors.empty()) log_.warn("container " + id + ": shutdown cleanup: " + errors);
        log_.info("container " + id + " removed (shutdown)");
        containers_.erase(id);
      }
      if (--*remaining == 0) done(Unit{});
    };
    if (c.created) {
      crun_.run({"delete", "--force", id}, {}, std::move(finish));
    } else {
      finish(Crun::Result{});
    }
  }
}

}  // namespace ember::agent
