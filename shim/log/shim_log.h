// The shim's log: logfmt, one line per event, the way containerd's own shims
// log (logrus text format), so `containerd` relays it unchanged:
//
//   time="2026-11-26T22:01:02.123456789Z" level=info msg="vm ready" id=web boot_ms=1234
//
// Lines go to every sink: containerd's `log` FIFO in the bundle (opened by the
// daemon) and an optional debug file from the runtime configuration. A sink
// that cannot take a line (FIFO full, reader gone) drops it: logging never
// blocks an RPC. Passed by reference; there is no global logger.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/common/unique_fd.h"

namespace ember::shim {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// "debug", "info", "warn"/"warning", "error" (case-insensitive); throws
// common::Error naming the value.
LogLevel parse_log_level(std::string_view text);
std::string_view log_level_name(LogLevel level);

struct LogField {
  LogField(std::string_view k, std::string_view v) : key(k), value(v) {}
  LogField(std::string_view k, const std::string& v) : key(k), value(v) {}
  LogField(std::string_view k, const char* v) : key(k), value(v) {}
  template <typename Int, typename = std::enable_if_t<std::is_arithmetic_v<Int>>>
  LogField(std::string_view k, Int v) : key(k), value(std::to_string(v)) {}
  std::string key;
  std::string value;
};

class ShimLog {
 public:
  ShimLog() = default;
  ShimLog(const ShimLog&) = delete;
  ShimLog& operator=(const ShimLog&) = delete;

  // Takes ownership of a writable fd (FIFO or file). Writes are non-blocking
  // when the fd is (open FIFOs with O_NONBLOCK).
  void add_sink(common::UniqueFd fd);
  // Opens `path` O_WRONLY|O_APPEND|O_CREAT (a regular debug file); throws
  // common::SystemError naming the path.
  void add_file(const std::string& path);
  void set_level(LogLevel level) { level_.store(static_cast<int>(level)); }
  LogLevel level() const { return static_cast<LogLevel>(level_.load()); }
  bool enabled(LogLevel level) const { return static_cast<int>(level) >= level_.load(); }
  // Fields added to every line (e.g. namespace, pid).
  void set_base_fields(std::vector<LogField> fields);

  void log(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields = {});
  void log(LogLevel level, std::string_view msg, const std::vector<LogField>& fields);
  void debug(std::string_view msg, std::initializer_list<LogField> fields = {}) { log(LogLevel::kDebug, msg, fields); }
  void info(std::string_view msg, std::initializer_list<LogField> fields = {}) { log(LogLevel::kInfo, msg, fields); }
  void warn(std::string_view msg, std::initializer_list<LogField> fields = {}) { log(LogLevel::kWarn, msg, fields); }
  void error(std::string_view msg, std::initializer_list<LogField> fields = {}) { log(LogLevel::kError, msg, fields); }

  // Lines written so far (for tests; sinks are not needed to count).
  uint64_t lines() const { return lines_.load(); }

  // One logfmt line with its "\n".
  static std::string format(std::chrono::system_clock::time_point time, LogLevel level, std::string_view msg,
                            const std::vector<LogField>& fields);

 private:
  std::mutex mutex_;
  std::vector<common::UniqueFd> sinks_;
  std::vector<LogField> base_;
  std::atomic<int> level_{static_cast<int>(LogLevel::kInfo)};
  std::atomic<uint64_t> lines_{0};
};

// logfmt value: bare when it has no space, quote, '=' or control character,
// otherwise double-quoted with \" \\ \n \t escapes.
std::string logfmt_value(std::string_view value);
// RFC 3339 with nanoseconds, UTC: 2026-11-26T22:01:02.123456789Z.
std::string rfc3339_nano(std::chrono::system_clock::time_point time);

}  // namespace ember::shim
