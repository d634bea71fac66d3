#include "shim/log/shim_log.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>

#include "vmm/common/error.h"

namespace ember::shim {

LogLevel parse_log_level(std::string_view text) {
  std::string lower;
  for (char c : text) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "debug" || lower == "trace") return LogLevel::kDebug;
  if (lower == "info") return LogLevel::kInfo;
  if (lower == "warn" || lower == "warning") return LogLevel::kWarn;
  if (lower == "error" || lower == "fatal" || lower == "panic") return LogLevel::kError;
  throw common::Error("unknown log level \"" + std::string(text) + "\" (expected debug, info, warn or error)");
}

std::string_view log_level_name(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warning";
    case LogLevel::kError: return "error";
  }
  return "info";
}

std::string logfmt_value(std::string_view value) {
  bool quote = value.empty();
  for (char c : value) {
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || static_cast<unsigned char>(c) < 0x20) {
      quote = true;
      break;
    }
  }
  if (!quote) return std::string(value);
  std::string out = "\"";
  for (char c : value) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

std::string rfc3339_nano(std::chrono::system_clock::time_point time) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(time.time_since_epoch()).count();
  time_t secs = static_cast<time_t>(ns / 1000000000);
  long frac = static_cast<long>(ns % 1000000000);
  if (frac < 0) {
    frac += 1000000000;
    --secs;
  }
  struct tm tm {};
  ::gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
  return buf;
}

std::string ShimLog::format(std::chrono::system_clock::time_point time, LogLevel level, std::string_view msg,
                            const std::vector<LogField>& fields) {
  std::string line = "time=\"" + rfc3339_nano(time) + "\" level=" + std::string(log_level_name(level)) +
                     " msg=" + logfmt_value(msg);
  for (const auto& f : fields) {
    line += ' ';
    line += f.key;
    line += '=';
    line += logfmt_value(f.value);
  }
  line += '\n';
  return line;
}

void ShimLog::add_sink(common::UniqueFd fd) {
  std::lock_guard lock(mutex_);
  sinks_.push_back(std::move(fd));
}

void ShimLog::add_file(const std::string& path) {
  common::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
  if (!fd) common::throw_errno("open shim debug log " + path);
  add_sink(std::move(fd));
}

void ShimLog::set_base_fields(std::vector<LogField> fields) {
  std::lock_guard lock(mutex_);
  base_ = std::move(fields);
}

void ShimLog::log(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields) {
  if (!enabled(level)) return;
  log(level, msg, std::vector<LogField>(fields));
}

void ShimLog::log(LogLevel level, std::string_view msg, const std::vector<LogField>& fields) {
  if (!enabled(level)) return;
  auto now = std::chrono::system_clock::now();
  std::lock_guard lock(mutex_);
  std::vector<LogField> all = fields;
  all.insert(all.end(), base_.begin(), base_.end());
  std::string line = format(now, level, msg, all);
  lines_.fetch_add(1);
  for (auto& sink : sinks_) {
    // One write per line keeps lines whole on a FIFO (PIPE_BUF atomicity for
    // lines up to 4 KiB); a full or readerless FIFO loses the line.
    ssize_t n;
    do {
      n = ::write(sink.get(), line.data(), line.size());
    } while (n < 0 && errno == EINTR);
  }
}

}  // namespace ember::shim
