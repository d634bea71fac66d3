#include "tests/integration/api_harness.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <thread>
#include <sstream>
#include <thread>

#include "vmm/common/error.h"

namespace ember::testing {

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

void ApiClient::connect() {
  if (fd_) return;
  common::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) common::throw_errno("socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  socket_.string().copy(addr.sun_path, sizeof addr.sun_path - 1);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    common::throw_errno("connect to " + socket_.string());
  fd_ = std::move(fd);
  buffer_.clear();
}

void ApiClient::send_raw(const std::string& bytes) {
  connect();
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::send(fd_.get(), bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      common::throw_errno("send to " + socket_.string());
    }
    done += static_cast<size_t>(n);
  }
}

void ApiClient::finish_sending() {
  if (fd_) ::shutdown(fd_.get(), SHUT_WR);
}

bool ApiClient::fill(std::chrono::milliseconds timeout) {
  pollfd p{fd_.get(), POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
  char tmp[65536];
  ssize_t n = ::read(fd_.get(), tmp, sizeof tmp);
  if (n <= 0) return false;
  buffer_.append(tmp, static_cast<size_t>(n));
  return true;
}

HttpReply ApiClient::read_reply(std::chrono::milliseconds timeout) {
  HttpReply reply;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    size_t end = buffer_.find("\r\n\r\n");
    if (end != std::string::npos) {
      size_t length = 0;
      std::string head = buffer_.substr(0, end + 2);
      size_t cl = head.find("\r\nContent-Length: ");
      if (cl != std::string::npos) length = std::stoul(head.substr(cl + 18));
      if (buffer_.size() >= end + 4 + length) {
        reply.raw = buffer_.substr(0, end + 4 + length);
        reply.head = head;
        reply.body = buffer_.substr(end + 4, length);
        reply.status = std::stoi(buffer_.substr(9, 3));
        buffer_.erase(0, end + 4 + length);
        return reply;
      }
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || !fill(left)) {
      reply.raw = buffer_;
      return reply;
    }
  }
}

HttpReply ApiClient::request(const std::string& method, const std::string& path,
                             const std::optional<std::string>& body) {
  std::string req =
      method + " " + path + " HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n";
  if (body)
    req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body->size()) +
           "\r\n";
  req += "\r\n";
  if (body) req += *body;
  send_raw(req);
  return read_reply();
}

bool ApiClient::closed_by_server(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    pollfd p{fd_.get(), POLLIN, 0};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char tmp[4096];
    ssize_t n = ::read(fd_.get(), tmp, sizeof tmp);
    if (n <= 0) return true;
    buffer_.append(tmp, static_cast<size_t>(n));
  }
}

std::filesystem::path EmberVmm::binary() {
  return std::filesystem::path(EMBER_BINARY_DIR) / "vmm/api/ember-vmm";
}

EmberVmm::EmberVmm(std::vector<std::string> args) : dir_("ember-api") {
  socket_ = dir_ / "api.sock";
  bool no_api = std::find(args.begin(), args.end(), "--no-api") != args.end();
  auto sock_arg = std::find(args.begin(), args.end(), "--api-sock");
  if (sock_arg != args.end() && sock_arg + 1 != args.end()) {
    socket_ = *(sock_arg + 1);
  } else if (!no_api) {
    args.insert(args.begin(), {"--api-sock", socket_.string()});
  }
  stdout_.reset(::open((dir_ / "stdout").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  stderr_.reset(::open((dir_ / "stderr").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  common::SpawnOptions spawn;
  spawn.argv.push_back(binary().string());
  spawn.argv.insert(spawn.argv.end(), args.begin(), args.end());
  spawn.stdout_fd = stdout_.get();
  spawn.stderr_fd = stderr_.get();
  spawn.die_with_parent = true;
  child_ = common::ChildProcess::spawn(spawn);
}

EmberVmm::~EmberVmm() {
  if (child_.running() && !child_.try_wait()) {
    child_.kill(SIGTERM);
    if (!child_.wait_for(5000)) child_.kill(SIGKILL);
  }
}

bool EmberVmm::wait_ready(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (child_.try_wait()) return false;
    ApiClient probe(socket_);
    try {
      probe.connect();
      return true;
    } catch (const common::Error&) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

std::optional<int> EmberVmm::wait_exit(std::chrono::milliseconds timeout) {
  std::optional<int> status = child_.wait_for(static_cast<int>(timeout.count()));
  if (!status) return std::nullopt;
  if (WIFEXITED(*status)) return WEXITSTATUS(*status);
  return -WTERMSIG(*status);
}

std::string EmberVmm::stdout_text() const { return read_file(dir_ / "stdout"); }
std::string EmberVmm::stderr_text() const { return read_file(dir_ / "stderr"); }

bool EmberVmm::wait_for_stdout(std::string_view text, std::chrono::milliseconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (stdout_text().find(text) == std::string::npos) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

}  // namespace ember::testing
