#include "guest-agent/agent/agent_log.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>

namespace ember::agent {
namespace {

std::string_view level_name(AgentLog::Level level) {
  switch (level) {
    case AgentLog::Level::kDebug:
      return "debug";
    case AgentLog::Level::kInfo:
      return "info";
    case AgentLog::Level::kWarn:
      return "warn";
    case AgentLog::Level::kError:
      return "error";
  }
  return "?";
}

}  // namespace

AgentLog::AgentLog(std::size_t capacity)
    : capacity_(std::max<std::size_t>(capacity, 1)),
      ring_(std::make_unique_for_overwrite<char[]>(capacity_)) {}

void AgentLog::set_console(int fd) {
  std::lock_guard lock(mutex_);
  owned_console_.reset();
  console_ = fd;
}

void AgentLog::set_console_owned(common::UniqueFd fd) {
  std::lock_guard lock(mutex_);
  console_ = fd.get();
  owned_console_ = std::move(fd);
}

void AgentLog::set_min_level(Level level) {
  std::lock_guard lock(mutex_);
  min_level_ = level;
}

void AgentLog::write(Level level, std::string_view message) {
  // Monotonic time since boot: the guest's wall clock may not be set yet,
  // and it matches the kernel's own console timestamps.
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  char prefix[64];
  int n = std::snprintf(prefix, sizeof prefix,
                        "[%5ld.%06ld] ember-agent %s: ", static_cast<long>(ts.tv_sec),
                        ts.tv_nsec / 1000, std::string(level_name(level)).c_str());
  std::string line(prefix, static_cast<std::size_t>(std::max(n, 0)));
  line.append(message);
  line.push_back('\n');

  std::lock_guard lock(mutex_);
  if (level < min_level_) return;
  append_locked(line);
  if (console_ >= 0) {
    std::string_view rest = line;
    while (!rest.empty()) {
      ssize_t w = ::write(console_, rest.data(), rest.size());
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) break;  // a broken console must not take the agent down
      rest.remove_prefix(static_cast<std::size_t>(w));
    }
  }
}

void AgentLog::append_locked(std::string_view bytes) {
  const std::size_t cap = capacity_;
  if (bytes.size() > cap) {
    written_ += bytes.size() - cap;
    bytes.remove_prefix(bytes.size() - cap);
  }
  std::size_t pos = written_ % cap;
  std::size_t first = std::min(bytes.size(), cap - pos);
  std::copy_n(bytes.data(), first, ring_.get() + pos);
  std::copy_n(bytes.data() + first, bytes.size() - first, ring_.get());
  written_ += bytes.size();
}

AgentLog::Chunk AgentLog::read(uint64_t offset, std::size_t max_bytes) const {
  std::lock_guard lock(mutex_);
  const std::size_t cap = capacity_;
  uint64_t oldest = written_ > cap ? written_ - cap : 0;
  Chunk chunk;
  chunk.offset = std::clamp(offset, oldest, written_);
  std::size_t len =
      static_cast<std::size_t>(std::min<uint64_t>(written_ - chunk.offset, max_bytes));
  chunk.data.resize(len);
  std::size_t pos = chunk.offset % cap;
  std::size_t first = std::min(len, cap - pos);
  std::copy_n(ring_.get() + pos, first, chunk.data.data());
  std::copy_n(ring_.get(), len - first, chunk.data.data() + first);
  chunk.next_offset = chunk.offset + len;
  return chunk;
}

uint64_t AgentLog::end_offset() const {
  std::lock_guard lock(mutex_);
  return written_;
}

}  // namespace ember::agent
