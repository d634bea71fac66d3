#include "vmm/vhost_user/cli.h"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "vmm/common/error.h"
#include "vmm/logger/logger.h"
#include "vmm/logger/metrics.h"
#include "vmm/vhost_user/device_spec.h"
#include "vmm/vhost_user/vhost_user_backend.h"

namespace ember::vmm::vhost_user {
namespace {

constexpr const char* kUsage =
    "usage: ember-vmm vhost-user --socket PATH --device SPEC [--socket PATH --device SPEC]...\n"
    "                            [--log-path PATH] [--level LEVEL] [--metrics-path PATH]\n"
    "\n"
    "Serves ember's virtio devices to vhost-user frontends (QEMU), one device per socket,\n"
    "until SIGINT or SIGTERM. Each --device is served on the --socket before it.\n"
    "\n"
    "  SPEC  blk,path=FILE[,readonly][,id=ID][,cache=unsafe|writeback][,engine=sync|async]\n"
    "        vsock,guest-cid=N,uds-path=PATH\n"
    "        rng\n"
    "  LEVEL Off, Error, Warning, Info (default), Debug, Trace\n";

struct Options {
  struct Backend {
    std::string socket;
    DeviceSpec device;
  };
  std::vector<Backend> backends;
  std::optional<std::string> log_path;
  LogLevel level = LogLevel::kInfo;
  std::optional<std::string> metrics_path;
  bool help = false;
};

class UsageError : public common::Error {
 public:
  using common::Error::Error;
};

LogLevel parse_level(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (text == "off") return LogLevel::kOff;
  if (text == "error") return LogLevel::kError;
  if (text == "warning" || text == "warn") return LogLevel::kWarning;
  if (text == "info") return LogLevel::kInfo;
  if (text == "debug") return LogLevel::kDebug;
  if (text == "trace") return LogLevel::kTrace;
  throw UsageError("--level: unknown level \"" + text + "\"");
}

Options parse(int argc, char** argv) {
  Options options;
  std::optional<std::string> socket;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    bool inline_value = false;
    if (arg.rfind("--", 0) == 0) {
      size_t eq = arg.find('=');
      if (eq != std::string::npos) {
        value = arg.substr(eq + 1);
        arg = arg.substr(0, eq);
        inline_value = true;
      }
    }
    auto take = [&]() -> std::string {
      if (inline_value) return value;
      if (i + 1 >= argc) throw UsageError(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      options.help = true;
    } else if (arg == "--socket" || arg == "--socket-path") {
      if (socket) throw UsageError("--socket " + *socket + " has no --device");
      socket = take();
    } else if (arg == "--device") {
      std::string spec = take();
      if (!socket) throw UsageError("--device " + spec + ": give its --socket first");
      try {
        options.backends.push_back({*socket, parse_device_spec(spec)});
      } catch (const common::Error& e) {
        throw UsageError(e.what());
      }
      socket.reset();
    } else if (arg == "--log-path") {
      options.log_path = take();
    } else if (arg == "--level") {
      options.level = parse_level(take());
    } else if (arg == "--metrics-path") {
      options.metrics_path = take();
    } else {
      throw UsageError("unknown argument \"" + std::string(argv[i]) + "\"");
    }
  }
  if (options.help) return options;
  if (socket) throw UsageError("--socket " + *socket + " has no --device");
  if (options.backends.empty()) throw UsageError("no --socket/--device given");
  return options;
}

// Blocks SIGINT and SIGTERM in this thread (and the backend threads it
// starts, which inherit the mask) so sigwait() receives them; restores the
// previous mask on scope exit.
class ShutdownSignals {
 public:
  ShutdownSignals() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    ::pthread_sigmask(SIG_BLOCK, &set_, &old_);
  }
  ~ShutdownSignals() { ::pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
  int wait() {
    int signal = 0;
    while (::sigwait(&set_, &signal) != 0) {
    }
    return signal;
  }

 private:
  sigset_t set_;
  sigset_t old_;
};

}  // namespace

int run_vhost_user_command(int argc, char** argv) {
  Options options;
  try {
    options = parse(argc, argv);
  } catch (const UsageError& e) {
    std::cerr << "ember-vmm vhost-user: " << e.what() << "\n\n" << kUsage;
    return 2;
  }
  if (options.help) {
    std::cout << kUsage;
    return 0;
  }

  Logger logger;
  Metrics metrics;
  logger.set_metrics(&metrics);
  try {
    LoggerConfig log;
    log.log_path = options.log_path;
    log.level = options.level;
    log.show_level = true;
    logger.configure(log);
    if (options.metrics_path) metrics.configure(MetricsConfig{*options.metrics_path, false, {}});
  } catch (const common::Error& e) {
    std::cerr << "ember-vmm vhost-user: " << e.what() << "\n";
    return 1;
  }

  ShutdownSignals signals;
  std::vector<std::unique_ptr<VhostUserBackend>> backends;
  try {
    size_t index = 0;
    for (const Options::Backend& b : options.backends) {
      // Names label log lines and metrics groups; two devices of one type
      // need different ones.
      std::string name = b.device.id;
      if (name.empty()) {
        name = device_type_name(b.device.type);
        size_t same = std::count_if(
            options.backends.begin(), options.backends.end(),
            [&](const Options::Backend& o) { return o.device.type == b.device.type; });
        if (same > 1) name += std::to_string(index);
      }
      auto backend = std::make_unique<VhostUserBackend>(
          b.socket, make_device(b.device, logger, metrics), logger, metrics, name);
      backend->start();
      backends.push_back(std::move(backend));
      ++index;
    }
  } catch (const common::Error& e) {
    LOG_ERROR(logger, std::string("vhost-user: ") + e.what());
    std::cerr << "ember-vmm vhost-user: " << e.what() << "\n";
    return 1;
  }

  int signal = signals.wait();
  LOG_INFO(logger, std::string("vhost-user: shutting down on ") + ::strsignal(signal));
  for (auto& backend : backends) backend->stop();
  backends.clear();
  if (options.metrics_path) metrics.flush();
  return 0;
}

}  // namespace ember::vmm::vhost_user
