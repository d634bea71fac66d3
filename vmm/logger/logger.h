// The VMM's log: Firecracker's line format (reference/firecracker-compat.md §1.6, §6)
//   2026-11-26T21:33:00.123456789 [anonymous-instance:fc_api:INFO:api/server.cc:42] message
// One write(2) per line. Passed by reference to whatever logs; there is no
// global logger.
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <string_view>

#include "vmm/common/unique_fd.h"
#include "vmm/vmm_config/vmm_config.h"

namespace ember::vmm {

class Metrics;

class Logger {
 public:
  explicit Logger(std::string instance_id = "anonymous-instance");

  // Applies PUT /logger or the CLI flags; opens log_path (O_RDWR|O_CREAT|O_NONBLOCK,
  // no truncation: it may be a FIFO). Throws common::Error naming the path.
  void configure(const LoggerConfig& config);
  void set_instance_id(std::string id);
  // Counts lost lines in logger.missed_log_count.
  void set_metrics(Metrics* metrics) { metrics_ = metrics; }

  bool enabled(LogLevel level) const;
  void log(LogLevel level, const char* file, int line, std::string_view message);

 private:
  std::string format(LogLevel level, const char* file, int line, std::string_view message) const;

  mutable std::mutex mutex_;
  std::string instance_id_;
  LoggerConfig config_;
  common::UniqueFd fd_;  // invalid: stdout
  std::atomic<int> level_;
  Metrics* metrics_ = nullptr;
};

// Thread name as Firecracker prints it (fc_api, fc_vcpu 0, main).
std::string current_thread_name();

}  // namespace ember::vmm

#define EMBER_LOG(logger, lvl, msg)                                                   \
  do {                                                                                \
    if ((logger).enabled(::ember::vmm::LogLevel::lvl))                                \
      (logger).log(::ember::vmm::LogLevel::lvl, __FILE__, __LINE__, (msg));           \
  } while (0)
#define LOG_ERROR(logger, msg) EMBER_LOG(logger, kError, msg)
#define LOG_WARN(logger, msg) EMBER_LOG(logger, kWarning, msg)
#define LOG_INFO(logger, msg) EMBER_LOG(logger, kInfo, msg)
#define LOG_DEBUG(logger, msg) EMBER_LOG(logger, kDebug, msg)
