#include "vmm/vhost_user/testing/fake_frontend.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "vmm/common/error.h"
#include "vmm/common/mapping.h"

namespace ember::vmm::vhost_user::testing {
namespace {

bool wait_readable(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  int r;
  do {
    r = ::poll(&p, 1, static_cast<int>(timeout.count()));
  } while (r < 0 && errno == EINTR);
  return r > 0;
}

// Reads exactly `len` bytes (blocking with a deadline); false on EOF/timeout.
bool read_exact(int fd, void* dst, size_t len, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  size_t done = 0;
  while (done < len) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || !wait_readable(fd, left)) return false;
    ssize_t n = ::recv(fd, static_cast<uint8_t*>(dst) + done, len - done, MSG_DONTWAIT);
    if (n == 0) return false;
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

SharedGuestMemory::SharedGuestMemory(GuestAddress start, uint64_t size)
    : start_(start), size_(size) {
  common::UniqueFd fd(::memfd_create("ember-test-guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) common::throw_errno("memfd_create");
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) < 0)
    common::throw_errno("ftruncate guest memfd");
  // As QEMU's memory-backend-memfd does by default (seal=on).
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
    common::throw_errno("seal guest memfd");
  }
  auto mapping =
      common::Mapping::map(size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0, "test guest RAM");
  memory_.add_region(start, std::move(mapping), std::move(fd), 0);
}

uint64_t SharedGuestMemory::user_address(GuestAddress gpa) const {
  return reinterpret_cast<uint64_t>(memory_.regions()[0].mapping.data()) +
         (gpa.raw() - start_.raw());
}

MemoryRegionDesc SharedGuestMemory::region() const {
  return MemoryRegionDesc{start_.raw(), size_, user_address(start_), 0};
}

bool FrontendRing::wait_call(std::chrono::milliseconds timeout) const {
  if (!wait_readable(call.fd(), timeout)) return false;
  call.consume();
  return true;
}

FakeFrontend FakeFrontend::connect(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) throw common::Error("socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  for (int attempt = 0;; ++attempt) {
    common::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) common::throw_errno("socket");
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0)
      return FakeFrontend(std::move(fd));
    if (attempt == 200) common::throw_errno("connect to " + path);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void FakeFrontend::send(Request request, std::span<const uint8_t> payload, std::span<const int> fds,
                        uint32_t flags) {
  Header header{static_cast<uint32_t>(request), flags, static_cast<uint32_t>(payload.size())};
  send_message(socket_.get(), header, payload, fds);
}

void FakeFrontend::send_bytes(std::span<const uint8_t> bytes, std::span<const int> fds) {
  iovec iov{const_cast<uint8_t*>(bytes.data()), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 16)] = {};
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  if (::sendmsg(socket_.get(), &msg, MSG_NOSIGNAL) != static_cast<ssize_t>(bytes.size())) {
    common::throw_errno("fake frontend: send raw bytes");
  }
}

Message FakeFrontend::receive_reply(Request request, std::chrono::milliseconds timeout) {
  Message msg;
  std::string name = request_name(static_cast<uint32_t>(request));
  if (!read_exact(socket_.get(), &msg.header, sizeof msg.header, timeout)) {
    throw common::Error("fake frontend: no reply to " + name + " (backend hung up or timed out)");
  }
  if (msg.header.request != static_cast<uint32_t>(request) || !(msg.header.flags & kFlagReply)) {
    throw common::Error("fake frontend: expected a reply to " + name + ", got " +
                        request_name(msg.header.request) + " flags " +
                        std::to_string(msg.header.flags));
  }
  if (msg.header.size > kMaxPayloadSize)
    throw common::Error("fake frontend: oversized reply to " + name);
  msg.payload.resize(msg.header.size);
  if (!read_exact(socket_.get(), msg.payload.data(), msg.payload.size(), timeout)) {
    throw common::Error("fake frontend: truncated reply to " + name);
  }
  return msg;
}

void FakeFrontend::expect_ack(Request request) {
  uint64_t value = receive_reply(request).payload_as<uint64_t>();
  if (value != 0) {
    throw common::Error("fake frontend: backend answered " +
                        request_name(static_cast<uint32_t>(request)) + " with failure " +
                        std::to_string(value));
  }
}

bool FakeFrontend::wait_closed(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || !wait_readable(socket_.get(), left)) return false;
    uint8_t buf[512];
    ssize_t n = ::recv(socket_.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
    // Anything else (a failure ack) is read and dropped.
  }
}

uint64_t FakeFrontend::get_features() {
  send(Request::kGetFeatures, {}, {}, kVersion);
  return receive_reply(Request::kGetFeatures).payload_as<uint64_t>();
}

void FakeFrontend::set_features(uint64_t features) {
  send_obj(Request::kSetFeatures, features);
  expect_ack(Request::kSetFeatures);
}

uint64_t FakeFrontend::get_protocol_features() {
  send(Request::kGetProtocolFeatures, {}, {}, kVersion);
  return receive_reply(Request::kGetProtocolFeatures).payload_as<uint64_t>();
}

void FakeFrontend::set_protocol_features(uint64_t features) {
  send_obj(Request::kSetProtocolFeatures, features);
  expect_ack(Request::kSetProtocolFeatures);
}

uint64_t FakeFrontend::get_queue_num() {
  send(Request::kGetQueueNum, {}, {}, kVersion);
  return receive_reply(Request::kGetQueueNum).payload_as<uint64_t>();
}

void FakeFrontend::set_owner() {
  send(Request::kSetOwner);
  expect_ack(Request::kSetOwner);
}

void FakeFrontend::set_mem_table(std::span<const MemoryRegionDesc> regions,
                                 std::span<const int> fds) {
  std::vector<uint8_t> payload(sizeof(MemoryTableHeader) +
                               regions.size() * sizeof(MemoryRegionDesc));
  MemoryTableHeader header{static_cast<uint32_t>(regions.size()), 0};
  std::memcpy(payload.data(), &header, sizeof header);
  if (!regions.empty())
    std::memcpy(payload.data() + sizeof header, regions.data(), regions.size_bytes());
  send(Request::kSetMemTable, payload, fds);
  expect_ack(Request::kSetMemTable);
}

void FakeFrontend::set_vring_num(uint32_t index, uint32_t num) {
  send_obj(Request::kSetVringNum, VringState{index, num});
  expect_ack(Request::kSetVringNum);
}

void FakeFrontend::set_vring_addr(uint32_t index, uint64_t desc, uint64_t avail, uint64_t used) {
  VringAddr addr{index, 0, desc, used, avail, 0};
  send_obj(Request::kSetVringAddr, addr);
  expect_ack(Request::kSetVringAddr);
}

void FakeFrontend::set_vring_base(uint32_t index, uint32_t base) {
  send_obj(Request::kSetVringBase, VringState{index, base});
  expect_ack(Request::kSetVringBase);
}

uint32_t FakeFrontend::get_vring_base(uint32_t index) {
  send_obj(Request::kGetVringBase, VringState{index, 0}, {}, kVersion);
  auto state = receive_reply(Request::kGetVringBase).payload_as<VringState>();
  if (state.index != index)
    throw common::Error("fake frontend: GET_VRING_BASE answered for another ring");
  return state.num;
}

void FakeFrontend::set_vring_kick(uint32_t index, int fd) {
  int fds[] = {fd};
  send_obj(Request::kSetVringKick, uint64_t(index), fds);
  expect_ack(Request::kSetVringKick);
}

void FakeFrontend::set_vring_call(uint32_t index, int fd) {
  int fds[] = {fd};
  send_obj(Request::kSetVringCall, uint64_t(index), fds);
  expect_ack(Request::kSetVringCall);
}

void FakeFrontend::set_vring_enable(uint32_t index, bool enable) {
  send_obj(Request::kSetVringEnable, VringState{index, enable ? 1u : 0u});
  expect_ack(Request::kSetVringEnable);
}

std::vector<uint8_t> FakeFrontend::get_config(uint32_t offset, uint32_t size) {
  std::vector<uint8_t> payload(sizeof(ConfigHeader) + size);
  ConfigHeader header{offset, size, 0};
  std::memcpy(payload.data(), &header, sizeof header);
  send(Request::kGetConfig, payload, {}, kVersion);
  Message reply = receive_reply(Request::kGetConfig);
  reply.expect_size(payload.size());
  return std::vector<uint8_t>(reply.payload.begin() + sizeof header, reply.payload.end());
}

void FakeFrontend::open_backend_channel() {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
    common::throw_errno("socketpair");
  backend_channel_.reset(pair[0]);
  common::UniqueFd theirs(pair[1]);
  int fds[] = {theirs.get()};
  send(Request::kSetBackendReqFd, {}, fds);
  expect_ack(Request::kSetBackendReqFd);
}

std::optional<Header> FakeFrontend::read_backend_request(std::chrono::milliseconds timeout) {
  Header header;
  if (!backend_channel_ || !read_exact(backend_channel_.get(), &header, sizeof header, timeout))
    return std::nullopt;
  std::vector<uint8_t> payload(header.size);
  if (!read_exact(backend_channel_.get(), payload.data(), payload.size(), timeout))
    return std::nullopt;
  return header;
}

uint64_t FakeFrontend::handshake() {
  uint64_t features = get_features();
  if (features & (uint64_t(1) << kFeatureProtocolFeatures)) {
    uint64_t protocol = get_protocol_features();
    set_protocol_features(protocol);
    if (protocol & (uint64_t(1) << kProtocolMq)) get_queue_num();
    set_owner();
    if (protocol & (uint64_t(1) << kProtocolBackendReq)) open_backend_channel();
  } else {
    set_owner();
  }
  return features;
}

void FakeFrontend::start(uint64_t features, const SharedGuestMemory& memory,
                         std::vector<FrontendRing*> rings, std::vector<uint16_t> bases) {
  set_features(features);
  MemoryRegionDesc region = memory.region();
  int fds[] = {memory.fd()};
  set_mem_table(std::span<const MemoryRegionDesc>(&region, 1), fds);
  for (uint32_t i = 0; i < rings.size(); ++i) {
    const virtio::testing::DriverQueue& q = rings[i]->queue;
    set_vring_num(i, q.size());
    set_vring_base(i, i < bases.size() ? bases[i] : 0);
    set_vring_addr(i, memory.user_address(q.desc_table()), memory.user_address(q.avail_ring()),
                   memory.user_address(q.used_ring()));
    set_vring_kick(i, rings[i]->kick.fd());
    set_vring_call(i, rings[i]->call.fd());
  }
  if (features & (uint64_t(1) << kFeatureProtocolFeatures)) {
    for (uint32_t i = 0; i < rings.size(); ++i) set_vring_enable(i, true);
  }
}

std::vector<uint32_t> FakeFrontend::stop(size_t ring_count) {
  std::vector<uint32_t> bases;
  for (uint32_t i = 0; i < ring_count; ++i) set_vring_enable(i, false);
  for (uint32_t i = 0; i < ring_count; ++i) bases.push_back(get_vring_base(i));
  return bases;
}

}  // namespace ember::vmm::vhost_user::testing
