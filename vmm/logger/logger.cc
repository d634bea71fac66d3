#include "vmm/logger/logger.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <cstring>
#include <ctime>

#include "vmm/common/error.h"
#include "vmm/logger/metrics.h"

namespace ember::vmm {
namespace {

const char* level_name(LogLevel level) {
  switch (level) {
    case LogLevel::kError: return "ERROR";
    case LogLevel::kWarning: return "WARN";
    case LogLevel::kInfo: return "INFO";
    case LogLevel::kDebug: return "DEBUG";
    case LogLevel::kTrace: return "TRACE";
    case LogLevel::kOff: break;
  }
  return "OFF";
}

}  // namespace

std::string current_thread_name() {
  char name[16] = {};
  if (pthread_getname_np(pthread_self(), name, sizeof name) != 0) return "main";
  return name;
}

Logger::Logger(std::string instance_id)
    : instance_id_(std::move(instance_id)), level_(static_cast<int>(LogLevel::kInfo)) {}

void Logger::configure(const LoggerConfig& config) {
  common::UniqueFd fd;
  if (config.log_path) {
    fd.reset(::open(config.log_path->c_str(), O_RDWR | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0644));
    if (!fd) common::throw_errno("open log file " + *config.log_path);
  }
  std::lock_guard lock(mutex_);
  config_ = config;
  if (fd) fd_ = std::move(fd);
  level_.store(static_cast<int>(config.level));
}

void Logger::set_instance_id(std::string id) {
  std::lock_guard lock(mutex_);
  instance_id_ = std::move(id);
}

bool Logger::enabled(LogLevel level) const {
  return level != LogLevel::kOff && static_cast<int>(level) <= level_.load(std::memory_order_relaxed);
}

std::string Logger::format(LogLevel level, const char* file, int line, std::string_view message) const {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  tm local;
  localtime_r(&ts.tv_sec, &local);
  char stamp[64];
  size_t n = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &local);
  snprintf(stamp + n, sizeof stamp - n, ".%09ld", ts.tv_nsec);

  std::string out = stamp;
  out += " [";
  out += instance_id_;
  out += ':';
  out += current_thread_name();
  if (config_.show_level) {
    out += ':';
    out += level_name(level);
  }
  if (config_.show_log_origin && file) {
    out += ':';
    out += file;
    out += ':';
    out += std::to_string(line);
  }
  out += "] ";
  out += message;
  out += '\n';
  return out;
}

void Logger::log(LogLevel level, const char* file, int line, std::string_view message) {
  std::lock_guard lock(mutex_);
  if (config_.module && file && std::strstr(file, config_.module->c_str()) == nullptr) return;
  std::string text = format(level, file, line, message);
  int fd = fd_ ? fd_.get() : STDOUT_FILENO;
  if (::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size()) && metrics_) {
    metrics_->counter("logger", "missed_log_count").inc();
  }
}

}  // namespace ember::vmm
