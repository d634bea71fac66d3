// Drives a real ember-vmm process the way Firecracker tooling does: spawns
// the binary with Firecracker's command line, talks HTTP/1.1 to its unix
// socket with a small client of its own (raw bytes in, raw bytes out), and
// collects the process's stdout, log file and exit status.
#pragma once

#include <chrono>
#include <string_view>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "tests/harness/temp_dir.h"
#include "vmm/common/child_process.h"
#include "vmm/common/unique_fd.h"

namespace ember::testing {

struct HttpReply {
  int status = 0;    // 0: no answer (connection closed or timed out)
  std::string head;  // status line and headers
  std::string body;
  std::string raw;  // exactly what came over the socket
  bool has_header(const std::string& line) const {
    return head.find("\r\n" + line + "\r\n") != std::string::npos;
  }
};

class ApiClient {
 public:
  explicit ApiClient(std::filesystem::path socket) : socket_(std::move(socket)) {}

  // Connects (or keeps the current connection: keep-alive).
  void connect();
  HttpReply get(const std::string& path) { return request("GET", path, std::nullopt); }
  HttpReply put(const std::string& path, const std::string& body) {
    return request("PUT", path, body);
  }
  HttpReply patch(const std::string& path, const std::string& body) {
    return request("PATCH", path, body);
  }
  HttpReply request(const std::string& method, const std::string& path,
                    const std::optional<std::string>& body);

  void send_raw(const std::string& bytes);
  // Tells the server this client will send nothing more (shutdown(SHUT_WR)).
  void finish_sending();
  // One response: head up to the blank line, then Content-Length bytes.
  HttpReply read_reply(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // True when the server closes the connection within `timeout`.
  bool closed_by_server(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  void disconnect() {
    fd_.reset();
    buffer_.clear();
  }

 private:
  bool fill(std::chrono::milliseconds timeout);

  std::filesystem::path socket_;
  common::UniqueFd fd_;
  std::string buffer_;
};

class EmberVmm {
 public:
  // Path of the ember-vmm binary in the build tree.
  static std::filesystem::path binary();

  // Spawns ember-vmm with `args`. Unless `args` names them, it gets
  // --api-sock <dir>/api.sock (not with --no-api). stdout and stderr go to
  // files in the temp dir.
  explicit EmberVmm(std::vector<std::string> args = {});
  ~EmberVmm();

  const TempDir& dir() const { return dir_; }
  const std::filesystem::path& socket() const { return socket_; }
  pid_t pid() const { return child_.pid(); }

  // Waits until the API socket accepts connections; false if the process
  // exited or `timeout` passed.
  bool wait_ready(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Waits for the process to exit; its exit code, -signal if killed, or
  // nullopt on timeout.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  bool running() { return child_.running() && !child_.try_wait(); }
  void signal(int signo) { child_.kill(signo); }

  ApiClient client() const { return ApiClient(socket_); }
  std::string stdout_text() const;
  std::string stderr_text() const;
  // Polls stdout (where the guest's serial console goes) until it contains
  // `text`; false after `timeout`. Payload guests run at ~1 MIPS on the
  // software KVM, so their output trails InstanceStart by a noticeable time.
  bool wait_for_stdout(std::string_view text,
                       std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;

 private:
  TempDir dir_;
  std::filesystem::path socket_;
  common::UniqueFd stdout_;
  common::UniqueFd stderr_;
  common::ChildProcess child_;
};

std::string read_file(const std::filesystem::path& path);
void write_file(const std::filesystem::path& path, const std::string& text);

}  // namespace ember::testing
