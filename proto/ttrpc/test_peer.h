// Test helper: the raw end of a socketpair, speaking ttrpc frames byte by
// byte so tests can send exactly what they want (bad ids, oversize frames,
// truncated headers) and see exactly what comes back.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "proto/ttrpc/frame.h"
#include "ttrpc/request.pb.h"
#include "vmm/common/error.h"
#include "vmm/common/unique_fd.h"

namespace ember::ttrpc::testing {

inline std::pair<common::UniqueFd, common::UniqueFd> socket_pair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    common::throw_errno("socketpair");
  }
  return {common::UniqueFd(fds[0]), common::UniqueFd(fds[1])};
}

// Hex dump without separators, for readable byte comparisons.
inline std::string hex(std::string_view bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

inline std::string unhex(std::string_view text) {
  std::string digits;
  for (char c : text) {
    if (c != ' ') digits += c;
  }
  auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  std::string out;
  for (std::size_t i = 0; i + 1 < digits.size(); i += 2) {
    out += static_cast<char>(nibble(digits[i]) << 4 | nibble(digits[i + 1]));
  }
  return out;
}

class RawPeer {
 public:
  explicit RawPeer(common::UniqueFd fd) : fd_(std::move(fd)) {}

  void send(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0) common::throw_errno("RawPeer send");
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  void send_request(std::uint32_t id, const ::ttrpc::Request& request) {
    send(encode_frame(id, FrameType::kRequest, request.SerializeAsString()));
  }

  // Next complete frame, or nullopt on EOF or when nothing came in `timeout`.
  std::optional<FrameReader::Frame> read_frame(
      std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (auto frame = reader_.next()) return frame;
      if (eof_) return std::nullopt;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd pfd{fd_.get(), POLLIN, 0};
      if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[65536];
      ssize_t n = ::read(fd_.get(), buf, sizeof(buf));
      if (n <= 0) {
        eof_ = true;
        continue;
      }
      raw_ += std::string_view(buf, static_cast<std::size_t>(n));
      reader_.feed(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(buf),
                                                 static_cast<std::size_t>(n)));
    }
  }

  std::optional<::ttrpc::Response> read_response(
      std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    auto frame = read_frame(timeout);
    if (!frame) return std::nullopt;
    ::ttrpc::Response response;
    if (frame->header.type != static_cast<std::uint8_t>(FrameType::kResponse) ||
        !response.ParseFromString(frame->payload)) {
      return std::nullopt;
    }
    last_id_ = frame->header.stream_id;
    return response;
  }

  // True once the other side closed (reads return 0) within `timeout`.
  bool wait_eof(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    while (!eof_) {
      if (!read_frame(timeout) && !eof_) return false;
    }
    return true;
  }

  std::uint32_t last_id() const { return last_id_; }
  // Every byte received so far.
  const std::string& raw() const { return raw_; }
  int fd() const { return fd_.get(); }
  void close() { fd_.reset(); }
  void shutdown_write() { ::shutdown(fd_.get(), SHUT_WR); }

 private:
  common::UniqueFd fd_;
  FrameReader reader_;
  std::string raw_;
  bool eof_ = false;
  std::uint32_t last_id_ = 0;
};

inline ::ttrpc::Request make_request(std::string service, std::string method,
                                     std::string payload = {}, std::int64_t timeout_nano = 0) {
  ::ttrpc::Request request;
  request.set_service(std::move(service));
  request.set_method(std::move(method));
  request.set_payload(std::move(payload));
  request.set_timeout_nano(timeout_nano);
  return request;
}

}  // namespace ember::ttrpc::testing
