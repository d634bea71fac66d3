// The VMM's log, in Firecracker's line format (reference/firecracker-compat.md §1.6, §6):
//   2026-11-26T21:33:00.123456789 [anonymous-instance:fc_api:INFO:vmm/api/api_server.cc:42] message
// Local time with nanoseconds, instance id, thread name, then the level and the
// origin (path relative to the source tree, line) when enabled. One write(2)
// per line, to stdout or to `log_path` (file or FIFO, opened
// O_RDWR|O_CREAT|O_NONBLOCK without truncation). A failed write counts in
// metrics `logger.missed_log_count`.
//
// Passed by reference to whatever logs; there is no global logger.
#pragma once

#include <atomic>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "vmm/common/unique_fd.h"
#include "vmm/vmm_config/vmm_config.h"

namespace ember::vmm {

class Metrics;

// A partial logger update with Firecracker's PUT /logger semantics: an absent
// field keeps its current value, except `level`, which falls back to Info.
struct LoggerUpdate {
  std::optional<std::string> log_path;
  std::optional<LogLevel> level;
  std::optional<bool> show_level;
  std::optional<bool> show_log_origin;
  std::optional<std::string> module;
};

class Logger {
 public:
  explicit Logger(std::string instance_id = "anonymous-instance");
  Logger(const Logger&) = delete;
  Logger& operator=(const Logger&) = delete;

  // Replaces the whole configuration; opens log_path when set. Throws
  // common::SystemError naming the path (errno kept) and leaves the logger
  // unchanged on failure.
  void configure(const LoggerConfig& config);
  // PUT /logger and the CLI flags (see LoggerUpdate).
  void update(const LoggerUpdate& update);
  LoggerConfig config() const;

  void set_instance_id(std::string id);
  std::string instance_id() const;
  // Counts lost lines in logger.missed_log_count. `metrics` must outlive the logger's use.
  void set_metrics(Metrics* metrics);

  bool enabled(LogLevel level) const {
    int l = static_cast<int>(level);
    return l != 0 && l <= level_.load(std::memory_order_relaxed);
  }
  // `file` is __FILE__ (an absolute path is shortened to the source tree), may be null.
  void log(LogLevel level, const char* file, int line, std::string_view message);

  // For fatal-signal handlers: like log(), but gives up instead of waiting if
  // another thread (or the interrupted code) holds the logger.
  void try_log(LogLevel level, const char* file, int line, std::string_view message);

  // The line as it would be written (without writing it); for tests.
  std::string format(LogLevel level, const char* file, int line, std::string_view message) const;

 private:
  std::string format_locked(LogLevel level, const char* file, int line,
                            std::string_view message) const;

  mutable std::mutex mutex_;
  std::string instance_id_;
  LoggerConfig config_;
  common::UniqueFd fd_;  // invalid: stdout
  std::atomic<int> level_;
  std::atomic<Metrics*> metrics_{nullptr};
};

// Thread name as Firecracker prints it: "main" for the process's main thread,
// otherwise the pthread name (fc_api, fc_vcpu 0, ...).
std::string current_thread_name();

// Firecracker's names for log levels in log lines: ERROR WARN INFO DEBUG TRACE.
const char* log_level_name(LogLevel level);

// Path of `file` relative to the source tree when it lies inside it, as
// Firecracker prints origins ("vmm/api/api_server.cc").
std::string_view source_relative_path(const char* file);

}  // namespace ember::vmm

#define EMBER_LOG(logger, lvl, msg)                                         \
  do {                                                                      \
    if ((logger).enabled(::ember::vmm::LogLevel::lvl))                      \
      (logger).log(::ember::vmm::LogLevel::lvl, __FILE__, __LINE__, (msg)); \
  } while (0)
#define LOG_ERROR(logger, msg) EMBER_LOG(logger, kError, msg)
#define LOG_WARN(logger, msg) EMBER_LOG(logger, kWarning, msg)
#define LOG_INFO(logger, msg) EMBER_LOG(logger, kInfo, msg)
#define LOG_DEBUG(logger, msg) EMBER_LOG(logger, kDebug, msg)
#define LOG_TRACE(logger, msg) EMBER_LOG(logger, kTrace, msg)
