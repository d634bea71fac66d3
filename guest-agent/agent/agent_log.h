// The agent's log: one line per event, mirrored to the console (stderr in host
// mode, /dev/console as PID 1) and kept in an in-memory ring buffer that the
// shim fetches with ReadLog: the guest has no disk of its own for logs, and
// its console may not be connected to anything.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "vmm/common/unique_fd.h"

namespace ember::agent {

class AgentLog {
 public:
  enum class Level { kDebug, kInfo, kWarn, kError };

  // The newest `capacity` bytes are kept. Offsets count bytes since start, so
  // a reader that fell behind sees where its data resumes.
  explicit AgentLog(std::size_t capacity = 256 * 1024);
  AgentLog(const AgentLog&) = delete;
  AgentLog& operator=(const AgentLog&) = delete;

  // Where lines are mirrored as they are written; -1 for nowhere. Borrowed
  // unless set with set_console_owned().
  void set_console(int fd);
  void set_console_owned(common::UniqueFd fd);
  void set_min_level(Level level);

  // Thread-safe. Adds "<uptime> <level> " in front and "\n" at the end.
  void write(Level level, std::string_view message);
  void debug(std::string_view m) { write(Level::kDebug, m); }
  void info(std::string_view m) { write(Level::kInfo, m); }
  void warn(std::string_view m) { write(Level::kWarn, m); }
  void error(std::string_view m) { write(Level::kError, m); }

  struct Chunk {
    std::string data;
    uint64_t offset = 0;       // stream offset of data[0]
    uint64_t next_offset = 0;  // offset after the last byte returned
  };
  // Bytes from stream offset `offset` (clamped to the oldest byte kept), at
  // most `max_bytes`.
  Chunk read(uint64_t offset, std::size_t max_bytes) const;
  uint64_t end_offset() const;

 private:
  void append_locked(std::string_view bytes);

  mutable std::mutex mutex_;
  // capacity_ bytes, circular; left uninitialised so untouched pages cost no
  // guest RAM until the log grows into them.
  std::size_t capacity_;
  std::unique_ptr<char[]> ring_;
  uint64_t written_ = 0;  // total bytes ever appended
  int console_ = -1;
  common::UniqueFd owned_console_;
  Level min_level_ = Level::kInfo;
};

}  // namespace ember::agent
