#include "vmm/api/vmm_process.h"

#include <signal.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>

#include "vmm/api/api_channel.h"
#include "vmm/api/api_server.h"
#include "vmm/api/cli.h"
#include "vmm/api/controller.h"
#include "vmm/common/error.h"
#include "vmm/common/event_fd.h"
#include "vmm/common/event_loop.h"
#include "vmm/common/unique_fd.h"
#include "vmm/logger/logger.h"
#include "vmm/logger/metrics.h"
#include "vmm/vmm.h"
#include "vmm/vmm_config/json.h"
#include "vmm/vmm_config/rust_format.h"

#ifndef EMBER_VERSION
#define EMBER_VERSION "0.0.0"
#endif
#ifndef EMBER_FIRECRACKER_VERSION
#define EMBER_FIRECRACKER_VERSION EMBER_VERSION
#endif
// The Firecracker release whose API ember implements (for --version's second line).
#define EMBER_FIRECRACKER_API "1.17"

namespace ember::vmm::api {

const char* ember_version() { return EMBER_VERSION; }
const char* reported_firecracker_version() { return EMBER_FIRECRACKER_VERSION; }

namespace {

// Firecracker's FcExitCode.
constexpr int kExitOk = 0;
constexpr int kExitGenericError = 1;
constexpr int kExitBadConfiguration = 152;
constexpr int kExitArgParsing = 153;

// How often metrics are written (upstream's WRITE_METRICS_PERIOD_MS).
constexpr int kMetricsPeriodSeconds = 60;

const char* exit_code_name(int code) {
  switch (code) {
    case 0:
      return "Ok";
    case 1:
      return "GenericError";
    case 2:
      return "UnexpectedError";
    case 148:
      return "BadSyscall";
    case 149:
      return "SIGBUS";
    case 150:
      return "SIGSEGV";
    case 151:
      return "SIGXFSZ";
    case 152:
      return "BadConfiguration";
    case 153:
      return "ArgParsing";
    case 154:
      return "SIGXCPU";
    case 155:
      return "SIGPIPE";
    case 156:
      return "SIGHUP";
    case 157:
      return "SIGILL";
  }
  return "UnexpectedError";
}

uint64_t clock_us(clockid_t clock) {
  timespec ts;
  ::clock_gettime(clock, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

// Upstream's LevelFilter::from_str.
std::optional<LogLevel> parse_level(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (s == "off") return LogLevel::kOff;
  if (s == "trace") return LogLevel::kTrace;
  if (s == "debug") return LogLevel::kDebug;
  if (s == "info") return LogLevel::kInfo;
  if (s == "warn" || s == "warning") return LogLevel::kWarning;
  if (s == "error") return LogLevel::kError;
  return std::nullopt;
}

// ----------------------------------------------------------- fatal signals
//
// Upstream turns SIGBUS, SIGSEGV, SIGXFSZ, SIGXCPU, SIGHUP and SIGILL into a
// log line, a `signals.*` metric and a distinct exit code. The handler needs
// the process's logger and metrics: the one place ember keeps them in
// globals, because a signal handler has no other way to reach them.
Logger* g_signal_logger = nullptr;
Counter* g_signal_counters[32] = {};

int fatal_exit_code(int signo) {
  switch (signo) {
    case SIGBUS:
      return 149;
    case SIGSEGV:
      return 150;
    case SIGXFSZ:
      return 151;
    case SIGXCPU:
      return 154;
    case SIGHUP:
      return 156;
    case SIGILL:
      return 157;
  }
  return 2;
}

void fatal_signal_handler(int signo, siginfo_t* info, void*) {
  if (signo > 0 && signo < 32 && g_signal_counters[signo]) g_signal_counters[signo]->store(1);
  if (g_signal_logger) {
    char message[96];
    std::snprintf(message, sizeof message,
                  "Shutting down VM after intercepting signal %d, code %d.", signo,
                  info ? info->si_code : 0);
    g_signal_logger->try_log(LogLevel::kError, __FILE__, __LINE__, message);
  }
  ::_exit(fatal_exit_code(signo));
}

void install_signal_handlers(Logger& logger, Metrics& metrics) {
  g_signal_logger = &logger;
  const std::pair<int, const char*> kFatal[] = {{SIGBUS, "sigbus"},   {SIGSEGV, "sigsegv"},
                                                {SIGXFSZ, "sigxfsz"}, {SIGXCPU, "sigxcpu"},
                                                {SIGHUP, "sighup"},   {SIGILL, "sigill"}};
  struct sigaction sa {};
  sa.sa_sigaction = fatal_signal_handler;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  for (const auto& [signo, name] : kFatal) sigaddset(&sa.sa_mask, signo);
  for (const auto& [signo, name] : kFatal) {
    g_signal_counters[signo] = &metrics.counter("signals", name);
    ::sigaction(signo, &sa, nullptr);
  }
  // Writes to a vanished API client or log reader fail with EPIPE instead.
  ::signal(SIGPIPE, SIG_IGN);
}

// ----------------------------------------------------------------- process

class VmmProcess {
 public:
  VmmProcess(const CliOptions& cli, Logger& logger, Metrics& metrics,
             std::optional<std::string> config_json)
      : cli_(cli),
        logger_(logger),
        metrics_(metrics),
        config_json_(std::move(config_json)),
        controller_(controller_options(), logger, metrics) {}

  int run();

 private:
  ControllerOptions controller_options() {
    ControllerOptions o;
    o.instance_id = cli_.id;
    o.version = reported_firecracker_version();
    o.boot_timer = cli_.boot_timer;
    o.start_vmm = &Vmm::start;
    o.on_started = [this](Vmm& vmm) { on_vm_started(vmm); };
    return o;
  }

  void on_vm_started(Vmm& vmm) {
    vmm.on_exit([this](const VmExit&) { vm_exited_.signal(); });
    if (vmm.state() == VmState::kExited) vm_exited_.signal();
    // Upstream's PeriodicMetrics::start: one line now, then every 60 s.
    write_metrics();
    itimerspec spec{};
    spec.it_value.tv_sec = kMetricsPeriodSeconds;
    spec.it_interval.tv_sec = kMetricsPeriodSeconds;
    ::timerfd_settime(metrics_timer_.get(), 0, &spec, nullptr);
  }

  void write_metrics() {
    if (metrics_.configured() && !metrics_.flush()) LOG_ERROR(logger_, "Failed to write metrics.");
  }

  void serve_requests() {
    while (auto action = channel_.take_request())
      channel_.send_response(controller_.handle(*action));
  }

  void on_signal() {
    signalfd_siginfo info;
    while (::read(signal_fd_.get(), &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
      LOG_INFO(logger_,
               "Received signal " + std::to_string(info.ssi_signo) + ", stopping the microVM.");
      stop_requested_ = true;
      if (Vmm* vmm = controller_.vmm()) {
        try {
          vmm->stop(kExitOk);
        } catch (const std::exception& e) {
          LOG_ERROR(logger_, std::string("Could not stop the microVM: ") + e.what());
          loop_.stop();
        }
      } else {
        loop_.stop();
      }
    }
  }

  // Logs an error the way upstream's main() does and returns its exit code.
  int fail(const std::string& message, int code) {
    LOG_ERROR(logger_, message);
    std::fprintf(stderr, "Error: %s\n", message.c_str());
    return code;
  }

  int start_up(const char* context);
  int build_from_config_file(const char* context);
  void shutdown_api();

  const CliOptions& cli_;
  Logger& logger_;
  Metrics& metrics_;
  std::optional<std::string> config_json_;
  ApiChannel channel_;
  Controller controller_;
  common::EventLoop loop_;
  common::EventFd vm_exited_;
  common::UniqueFd signal_fd_;
  common::UniqueFd metrics_timer_{::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)};
  std::unique_ptr<ApiServer> api_server_;
  bool socket_created_ = false;
  bool stop_requested_ = false;
};

int VmmProcess::build_from_config_file(const char* context) {
  const std::string prefix = std::string(context) + "Failed to build MicroVM from Json: ";
  try {
    VmmConfigFile file;
    try {
      file = json::parse_config_file(*config_json_);
    } catch (const json::JsonError& e) {
      throw ConfigError(ConfigError::Area::kCpuConfig, std::string("Invalid JSON: ") + e.what());
    }
    controller_.apply_config_file(file);
  } catch (const ConfigError& e) {
    return fail(
        prefix + "Configuration for VMM from one single json failed: " + e.config_file_message(),
        kExitGenericError);
  } catch (const std::exception& e) {
    return fail(prefix + "Configuration for VMM from one single json failed: " + e.what(),
                kExitGenericError);
  }
  try {
    controller_.start_microvm();
  } catch (const std::exception& e) {
    return fail(prefix + "Could not Start MicroVM from one single json: " + e.what(),
                kExitGenericError);
  }
  LOG_INFO(logger_, "Successfully started microvm that was configured from one single json");
  return kExitOk;
}

void VmmProcess::shutdown_api() {
  if (api_server_) {
    api_server_->stop();
    api_server_.reset();
  }
  if (socket_created_) {
    ::unlink(cli_.api_sock.c_str());
    socket_created_ = false;
  }
}

int VmmProcess::run() {
  const char* context = cli_.no_api ? "RunWithoutApiError error: " : "RunWithApi error: ";
  int code = start_up(context);
  if (code == kExitOk && config_json_) code = build_from_config_file(context);
  if (code == kExitOk) {
    if (!cli_.no_api)
      loop_.add(channel_.request_fd(), EPOLLIN, [this](uint32_t) { serve_requests(); });
    loop_.add(signal_fd_.get(), EPOLLIN, [this](uint32_t) { on_signal(); });
    loop_.add(vm_exited_.fd(), EPOLLIN, [this](uint32_t) {
      vm_exited_.consume();
      loop_.stop();
    });
    loop_.add(metrics_timer_.get(), EPOLLIN, [this](uint32_t) {
      uint64_t expirations;
      (void)!::read(metrics_timer_.get(), &expirations, sizeof expirations);
      write_metrics();
    });
    try {
      loop_.run();
    } catch (const std::exception& e) {
      code = fail(std::string("The VMM thread stopped: ") + e.what(), kExitGenericError);
    }
  }

  std::optional<VmExit> exit;
  if (Vmm* vmm = controller_.vmm()) {
    if (code != kExitOk) {
      try {
        vmm->stop(code);
      } catch (const std::exception&) {
      }
    }
    exit = vmm->wait();
  }
  shutdown_api();
  // Upstream's Vmm::stop writes the metrics one last time.
  write_metrics();

  if (exit) {
    LOG_INFO(logger_, "The microVM exited: " +
                          (exit->reason.empty() ? std::string("no reason given") : exit->reason) +
                          " (exit code " + std::to_string(exit->exit_code) + ").");
    if (code == kExitOk && exit->exit_code != kExitOk) {
      code = fail(std::string(context) +
                      "MicroVM stopped with an error: " + exit_code_name(exit->exit_code),
                  exit->exit_code);
    }
  }
  if (code == kExitOk) {
    LOG_INFO(logger_, "Firecracker exiting successfully. exit_code=0");
  } else {
    LOG_ERROR(logger_, "Firecracker exiting with error. exit_code=" + std::to_string(code));
  }
  return code;
}

int VmmProcess::start_up(const char* context) {
  // SIGTERM/SIGINT become events of the VMM thread's loop; blocked before any
  // thread starts so that every thread inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  ::pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal_fd_.reset(::signalfd(-1, &stop_signals, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!signal_fd_) return fail("signalfd: " + common::errno_text(errno), kExitGenericError);
  if (!metrics_timer_)
    return fail("timerfd_create: " + common::errno_text(errno), kExitGenericError);
  if (cli_.no_api) return kExitOk;

  common::UniqueFd listener;
  try {
    listener = bind_api_socket(cli_.api_sock);
  } catch (const common::SystemError& e) {
    if (e.error_code() == EADDRINUSE)
      return fail(std::string(context) + "Failed to open the API socket at: " + cli_.api_sock +
                      ". Check that it is not already used.",
                  kExitGenericError);
    return fail(std::string(context) + "Failed to bind and run the HTTP server: IO error: " +
                    rust_io_error(e.error_code()),
                kExitGenericError);
  } catch (const std::exception& e) {
    return fail(
        std::string(context) + "Failed to bind and run the HTTP server: IO error: " + e.what(),
        kExitGenericError);
  }
  socket_created_ = true;
  LOG_INFO(logger_, "Listening on API socket (" + rust_debug_str(cli_.api_sock) + ").");
  ApiServerOptions options;
  options.max_payload = cli_.http_api_max_payload_size;
  options.on_started = [this] {
    // Startup times as upstream's ProcessTimeReporter computes them from
    // the jailer's --start-time-us/--start-time-cpu-us/--parent-cpu-time-us.
    if (cli_.start_time_us)
      metrics_.counter("api_server", "process_startup_time_us")
          .store(clock_us(CLOCK_MONOTONIC) - *cli_.start_time_us);
    if (cli_.start_time_cpu_us)
      metrics_.counter("api_server", "process_startup_time_cpu_us")
          .store(clock_us(CLOCK_PROCESS_CPUTIME_ID) - *cli_.start_time_cpu_us +
                 cli_.parent_cpu_time_us.value_or(0));
  };
  api_server_ = std::make_unique<ApiServer>(std::move(listener), std::move(options), channel_,
                                            logger_, metrics_);
  api_server_->start();
  return kExitOk;
}

int exit_with_error(Logger& logger, const std::string& message, int code) {
  LOG_ERROR(logger, message);
  std::fprintf(stderr, "Error: %s\n", message.c_str());
  LOG_ERROR(logger, "Firecracker exiting with error. exit_code=" + std::to_string(code));
  return code;
}

}  // namespace

int run_vmm_process(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  Logger logger;
  Metrics metrics;
  logger.set_metrics(&metrics);

  CliOptions cli;
  try {
    cli = parse_cli(args);
  } catch (const CliError& e) {
    return exit_with_error(logger,
                           std::string("Arguments parsing error: ") + e.what() +
                               " \n\nFor more information try --help.",
                           kExitArgParsing);
  }
  const std::string version_line = std::string("Firecracker v") + reported_firecracker_version();
  if (cli.help) {
    std::printf("%s\n\n%s\n", version_line.c_str(), cli_help().c_str());
    return kExitOk;
  }
  if (cli.version) {
    std::printf("%s\nember-vmm %s (implements the Firecracker v%s API)\n\n", version_line.c_str(),
                ember_version(), EMBER_FIRECRACKER_API);
    return kExitOk;
  }
  if (cli.snapshot_version || cli.describe_snapshot)
    return exit_with_error(logger, "Snapshots are not supported by ember.", kExitGenericError);
  if (auto problem = validate_instance_id(cli.id))
    return exit_with_error(logger, "Invalid instance ID: " + *problem, kExitArgParsing);

  logger.set_instance_id(cli.id);
  metrics.set_instance_id(cli.id);
  LoggerUpdate update;
  update.log_path = cli.log_path;
  if (cli.level) {
    update.level = parse_level(*cli.level);
    if (!update.level)
      return exit_with_error(
          logger,
          "Invalid value for logger level: Failed to parse string to level filter: " + *cli.level +
              ".Possible values: [Error, Warning, Info, Debug]",
          kExitBadConfiguration);
  }
  if (cli.show_level) update.show_level = true;
  if (cli.show_log_origin) update.show_log_origin = true;
  update.module = cli.module;
  try {
    logger.update(update);
  } catch (const common::SystemError& e) {
    return exit_with_error(
        logger,
        "Could not initialize logger: Failed to open target file: " + rust_io_error(e.error_code()),
        kExitGenericError);
  }
  LOG_INFO(logger, std::string("Running Firecracker v") + reported_firecracker_version());
  install_signal_handlers(logger, metrics);

  if (!cli.no_seccomp)
    LOG_WARN(
        logger,
        cli.seccomp_filter
            ? "--seccomp-filter " + *cli.seccomp_filter +
                  " is ignored: seccomp filtering is not implemented in ember yet, the VMM runs "
                  "without it."
            : std::string(
                  "Seccomp filtering is not implemented in ember yet: the VMM runs without it."));
  if (cli.enable_pci)
    return exit_with_error(logger,
                           "--enable-pci is not supported by ember: its devices use virtio-mmio.",
                           kExitGenericError);
  if (cli.metadata)
    return exit_with_error(logger, "--metadata cannot be used: MMDS is not supported by ember.",
                           kExitGenericError);
  if (cli.metrics_path) {
    MetricsConfig config;
    config.metrics_path = *cli.metrics_path;
    try {
      metrics.configure(config);
    } catch (const common::SystemError& e) {
      return exit_with_error(logger,
                             "Could not initialize metrics: Cannot initialize the metrics system "
                             "due to bad user input: " +
                                 rust_io_error(e.error_code()),
                             kExitGenericError);
    }
  }

  std::optional<std::string> config_json;
  if (cli.config_file) {
    std::ifstream in(*cli.config_file);
    if (!in)
      return exit_with_error(logger,
                             "Unable to open or read from the configuration file " +
                                 *cli.config_file + ": " + rust_io_error(errno),
                             kExitGenericError);
    std::stringstream text;
    text << in.rdbuf();
    config_json = text.str();
  }

  VmmProcess process(cli, logger, metrics, std::move(config_json));
  return process.run();
}

}  // namespace ember::vmm::api
