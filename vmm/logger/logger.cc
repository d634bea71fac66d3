#include "vmm/logger/logger.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "vmm/common/error.h"
#include "vmm/logger/metrics.h"

#ifndef EMBER_SOURCE_PREFIX
#define EMBER_SOURCE_PREFIX ""
#endif

namespace ember::vmm {

const char* log_level_name(LogLevel level) {
  switch (level) {
    case LogLevel::kError:
      return "ERROR";
    case LogLevel::kWarning:
      return "WARN";
    case LogLevel::kInfo:
      return "INFO";
    case LogLevel::kDebug:
      return "DEBUG";
    case LogLevel::kTrace:
      return "TRACE";
    case LogLevel::kOff:
      break;
  }
  return "OFF";
}

std::string_view source_relative_path(const char* file) {
  if (!file) return "?";
  std::string_view path(file);
  std::string_view prefix(EMBER_SOURCE_PREFIX);
  if (!prefix.empty() && path.substr(0, prefix.size()) == prefix) return path.substr(prefix.size());
  return path;
}

std::string current_thread_name() {
  // The main thread's name is the executable's; Firecracker calls it "main".
  if (static_cast<pid_t>(::syscall(SYS_gettid)) == ::getpid()) return "main";
  char name[17] = {};
  if (::prctl(PR_GET_NAME, name, 0, 0, 0) != 0 || name[0] == '\0') return "-";
  return name;
}

Logger::Logger(std::string instance_id)
    : instance_id_(std::move(instance_id)), level_(static_cast<int>(LogLevel::kInfo)) {}

static common::UniqueFd open_log_target(const std::string& path) {
  // Firecracker opens logs and metrics read-write and non-blocking so a FIFO
  // can be opened before its reader exists and a stalled reader never blocks
  // the VMM; no O_TRUNC/O_APPEND (the operator owns the file).
  common::UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0644));
  if (!fd) common::throw_errno("open log file " + path);
  return fd;
}

void Logger::configure(const LoggerConfig& config) {
  common::UniqueFd fd;
  if (config.log_path) fd = open_log_target(*config.log_path);
  std::lock_guard lock(mutex_);
  config_ = config;
  if (fd) fd_ = std::move(fd);
  level_.store(static_cast<int>(config.level));
}

void Logger::update(const LoggerUpdate& update) {
  common::UniqueFd fd;
  if (update.log_path) fd = open_log_target(*update.log_path);
  std::lock_guard lock(mutex_);
  if (fd) {
    fd_ = std::move(fd);
    config_.log_path = update.log_path;
  }
  config_.level = update.level.value_or(LogLevel::kInfo);
  if (update.show_level) config_.show_level = *update.show_level;
  if (update.show_log_origin) config_.show_log_origin = *update.show_log_origin;
  if (update.module) config_.module = update.module;
  level_.store(static_cast<int>(config_.level));
}

LoggerConfig Logger::config() const {
  std::lock_guard lock(mutex_);
  return config_;
}

void Logger::set_instance_id(std::string id) {
  std::lock_guard lock(mutex_);
  instance_id_ = std::move(id);
}

std::string Logger::instance_id() const {
  std::lock_guard lock(mutex_);
  return instance_id_;
}

void Logger::set_metrics(Metrics* metrics) { metrics_.store(metrics); }

std::string Logger::format(LogLevel level, const char* file, int line,
                           std::string_view message) const {
  std::lock_guard lock(mutex_);
  return format_locked(level, file, line, message);
}

std::string Logger::format_locked(LogLevel level, const char* file, int line,
                                  std::string_view message) const {
  timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  tm local;
  ::localtime_r(&ts.tv_sec, &local);
  char stamp[64];
  int n = std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%09ld",
                        local.tm_year + 1900, local.tm_mon + 1, local.tm_mday, local.tm_hour,
                        local.tm_min, local.tm_sec, ts.tv_nsec);

  std::string out;
  out.reserve(static_cast<size_t>(n) + instance_id_.size() + message.size() + 64);
  out.append(stamp, static_cast<size_t>(n));
  out += " [";
  out += instance_id_;
  out += ':';
  out += current_thread_name();
  if (config_.show_level) {
    out += ':';
    out += log_level_name(level);
  }
  if (config_.show_log_origin) {
    out += ':';
    out += source_relative_path(file);
    out += ':';
    out += std::to_string(line);
  }
  out += "] ";
  out += message;
  out += '\n';
  return out;
}

void Logger::log(LogLevel level, const char* file, int line, std::string_view message) {
  if (!enabled(level)) return;
  bool missed = false;
  {
    std::lock_guard lock(mutex_);
    // Firecracker's `module` filter keeps lines whose origin starts with it;
    // ember's origins are source paths ("vmm/api" keeps the API's lines).
    if (config_.module &&
        source_relative_path(file).substr(0, config_.module->size()) != *config_.module)
      return;
    std::string text = format_locked(level, file, line, message);
    int fd = fd_ ? fd_.get() : STDOUT_FILENO;
    ssize_t written;
    do {
      written = ::write(fd, text.data(), text.size());
    } while (written < 0 && errno == EINTR);
    missed = written != static_cast<ssize_t>(text.size());
  }
  if (missed) {
    if (Metrics* m = metrics_.load()) m->counter("logger", "missed_log_count").inc();
  }
}

void Logger::try_log(LogLevel level, const char* file, int line, std::string_view message) {
  if (!enabled(level)) return;
  std::unique_lock lock(mutex_, std::try_to_lock);
  if (!lock.owns_lock()) return;
  std::string text = format_locked(level, file, line, message);
  (void)!::write(fd_ ? fd_.get() : STDOUT_FILENO, text.data(), text.size());
}

}  // namespace ember::vmm
