#include "vmm/vhost_user/protocol.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

namespace ember::vmm::vhost_user {

std::string request_name(uint32_t request) {
  switch (static_cast<Request>(request)) {
    case Request::kGetFeatures:
      return "GET_FEATURES";
    case Request::kSetFeatures:
      return "SET_FEATURES";
    case Request::kSetOwner:
      return "SET_OWNER";
    case Request::kResetOwner:
      return "RESET_OWNER";
    case Request::kSetMemTable:
      return "SET_MEM_TABLE";
    case Request::kSetLogBase:
      return "SET_LOG_BASE";
    case Request::kSetLogFd:
      return "SET_LOG_FD";
    case Request::kSetVringNum:
      return "SET_VRING_NUM";
    case Request::kSetVringAddr:
      return "SET_VRING_ADDR";
    case Request::kSetVringBase:
      return "SET_VRING_BASE";
    case Request::kGetVringBase:
      return "GET_VRING_BASE";
    case Request::kSetVringKick:
      return "SET_VRING_KICK";
    case Request::kSetVringCall:
      return "SET_VRING_CALL";
    case Request::kSetVringErr:
      return "SET_VRING_ERR";
    case Request::kGetProtocolFeatures:
      return "GET_PROTOCOL_FEATURES";
    case Request::kSetProtocolFeatures:
      return "SET_PROTOCOL_FEATURES";
    case Request::kGetQueueNum:
      return "GET_QUEUE_NUM";
    case Request::kSetVringEnable:
      return "SET_VRING_ENABLE";
    case Request::kSendRarp:
      return "SEND_RARP";
    case Request::kNetSetMtu:
      return "NET_SET_MTU";
    case Request::kSetBackendReqFd:
      return "SET_BACKEND_REQ_FD";
    case Request::kIotlbMsg:
      return "IOTLB_MSG";
    case Request::kSetVringEndian:
      return "SET_VRING_ENDIAN";
    case Request::kGetConfig:
      return "GET_CONFIG";
    case Request::kSetConfig:
      return "SET_CONFIG";
    case Request::kGetInflightFd:
      return "GET_INFLIGHT_FD";
    case Request::kSetInflightFd:
      return "SET_INFLIGHT_FD";
    case Request::kResetDevice:
      return "RESET_DEVICE";
    case Request::kVringKick:
      return "VRING_KICK";
    case Request::kGetMaxMemSlots:
      return "GET_MAX_MEM_SLOTS";
    case Request::kAddMemReg:
      return "ADD_MEM_REG";
    case Request::kRemMemReg:
      return "REM_MEM_REG";
    case Request::kSetStatus:
      return "SET_STATUS";
    case Request::kGetStatus:
      return "GET_STATUS";
  }
  return "request " + std::to_string(request);
}

void Message::expect_size(size_t size) const {
  if (payload.size() != size) {
    throw ProtocolError(name() + ": payload is " + std::to_string(payload.size()) +
                        " bytes, expected " + std::to_string(size));
  }
}

void Message::expect_fds(size_t count) const {
  if (fds.size() != count) {
    throw ProtocolError(name() + ": came with " + std::to_string(fds.size()) +
                        " file descriptors, expected " + std::to_string(count));
  }
}

ssize_t MessageReader::receive(int fd, uint8_t* dst, size_t len) {
  iovec iov{dst, len};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = ::recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return -1;
    throw ProtocolError("receive from frontend: " + common::errno_text(errno));
  }
  // Take ownership of every fd first, so none leaks when we then refuse them.
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int received;
      std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      fds_.emplace_back(received);
    }
  }
  if (msg.msg_flags & MSG_CTRUNC) {
    throw ProtocolError("frontend sent more than " + std::to_string(kMaxFds) +
                        " file descriptors with one message");
  }
  if (fds_.size() > kMaxFds) {
    throw ProtocolError("frontend sent " + std::to_string(fds_.size()) +
                        " file descriptors with one message, at most " + std::to_string(kMaxFds) +
                        " are allowed");
  }
  return n;
}

MessageReader::Status MessageReader::read(int fd, Message& out) {
  while (header_done_ < sizeof(Header)) {
    ssize_t n = receive(fd, reinterpret_cast<uint8_t*>(&header_) + header_done_,
                        sizeof(Header) - header_done_);
    if (n < 0) return Status::kWouldBlock;
    if (n == 0) {
      if (header_done_ == 0 && fds_.empty()) return Status::kClosed;
      throw ProtocolError("frontend hung up in the middle of a message header");
    }
    header_done_ += static_cast<size_t>(n);
    if (header_done_ == sizeof(Header)) {
      std::string name = request_name(header_.request);
      if ((header_.flags & kVersionMask) != kVersion) {
        throw ProtocolError(name + ": unsupported protocol version " +
                            std::to_string(header_.flags & kVersionMask) + " (flags " +
                            std::to_string(header_.flags) + "), expected 1");
      }
      if (header_.flags & kFlagReply)
        throw ProtocolError(name + ": a request must not carry the reply flag");
      if (header_.size > kMaxPayloadSize) {
        throw ProtocolError(name + ": payload size " + std::to_string(header_.size) +
                            " exceeds the limit of " + std::to_string(kMaxPayloadSize) + " bytes");
      }
      payload_.assign(header_.size, 0);
      payload_done_ = 0;
    }
  }
  while (payload_done_ < payload_.size()) {
    ssize_t n = receive(fd, payload_.data() + payload_done_, payload_.size() - payload_done_);
    if (n < 0) return Status::kWouldBlock;
    if (n == 0) {
      throw ProtocolError(request_name(header_.request) + ": frontend hung up after " +
                          std::to_string(payload_done_) + " of " + std::to_string(payload_.size()) +
                          " payload bytes");
    }
    payload_done_ += static_cast<size_t>(n);
  }
  out.header = header_;
  out.payload = std::move(payload_);
  out.fds = std::move(fds_);
  header_ = Header{};
  header_done_ = 0;
  payload_.clear();
  payload_done_ = 0;
  fds_.clear();
  return Status::kMessage;
}

void send_message(int fd, const Header& header, std::span<const uint8_t> payload,
                  std::span<const int> fds, const std::string& what, int timeout_ms) {
  std::string name = what.empty() ? request_name(header.request) : what;
  if (fds.size() > kMaxFds) throw common::Error("send " + name + ": too many file descriptors");
  // insert() rather than memcpy into a sized vector: g++ 12 -O2 misreads the
  // latter as an overflow (-Wstringop-overflow false positive).
  std::vector<uint8_t> bytes;
  bytes.reserve(sizeof(Header) + payload.size());
  const auto* header_bytes = reinterpret_cast<const uint8_t*>(&header);
  bytes.insert(bytes.end(), header_bytes, header_bytes + sizeof(Header));
  bytes.insert(bytes.end(), payload.begin(), payload.end());

  size_t sent = 0;
  bool fds_sent = fds.empty();
  while (sent < bytes.size()) {
    iovec iov{bytes.data() + sent, bytes.size() - sent};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
    if (!fds_sent) {
      msg.msg_control = control;
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        pollfd p{fd, POLLOUT, 0};
        int r = ::poll(&p, 1, timeout_ms);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
          throw common::Error("send " + name + ": peer did not read for " +
                              std::to_string(timeout_ms) + " ms");
        }
        continue;
      }
      throw common::SystemError(errno, "send " + name);
    }
    sent += static_cast<size_t>(n);
    fds_sent = true;
  }
}

}  // namespace ember::vmm::vhost_user
