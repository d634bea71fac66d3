// libFuzzer target: the vsock packet path. The fuzzer writes a sequence of
// TX packets (headers biased towards valid connections, any op, flags, credit
// and length) that a guest sends through real virtqueues into the muxer,
// while host unix sockets connect, listen, write and close around them.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "vmm/devices/virtio/vsock/testing/vsock_guest.h"
#include "vmm/devices/virtio/vsock/vsock_device.h"

using namespace ember::vmm;
using namespace ember::vmm::virtio;
using ember::common::UniqueFd;

namespace {

UniqueFd unix_socket(const std::string& path, bool listen_on) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (listen_on) {
    ::unlink(path.c_str());
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) return {};
    ::listen(fd.get(), 8);
  } else if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    return {};
  }
  return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Logger logger;
  static bool quiet = [] {
    LoggerConfig c;
    c.level = LogLevel::kOff;
    logger.configure(c);
    return true;
  }();
  (void)quiet;
  static Metrics metrics;
  static std::string uds = "/tmp/ember-fuzz-vsock-" + std::to_string(::getpid()) + ".sock";
  static GuestMemory memory = GuestMemory::anonymous({{GuestAddress(0), 8 << 20}});

  ::unlink(uds.c_str());
  ember::common::EventLoop loop;
  testing::GuestAllocator allocator(GuestAddress(0x1000), (8 << 20) - 0x1000);
  std::optional<VsockDevice> device;
  try {
    device.emplace(VsockConfig{3, uds}, logger, metrics);
  } catch (const ember::common::Error&) {
    return 0;
  }
  UniqueFd listener = unix_socket(uds + "_52", true);
  testing::VsockGuest guest(memory, allocator, *device, loop, 3, 16, 512);
  guest.activate((uint64_t(1) << kFeatureVersion1) | (uint64_t(1) << kFeatureEventIdx));
  guest.listen(99);

  // A host-initiated connection to guest port 99 (the guest stack answers).
  UniqueFd client = unix_socket(uds, false);
  if (client) (void)::write(client.get(), "CONNECT 99\n", 11);
  std::vector<UniqueFd> accepted;
  char buf[4096];

  size_t pos = 0;
  while (pos + 12 <= size) {
    const uint8_t* p = data + pos;
    pos += 12;
    VsockHeader h;
    uint8_t sel = p[0];
    h.src_cid = (sel & 0x80) ? p[1] : 3;
    h.dst_cid = (sel & 0x40) ? p[2] : 2;
    static const uint32_t kPorts[] = {52, 99, 1u << 30, (1u << 30) + 1, 7};
    h.src_port = (sel & 0x20) ? p[3] : 1000 + (p[3] & 3);
    h.dst_port = kPorts[p[4] % 5];
    h.type = (sel & 0x10) ? p[5] : kVsockTypeStream;
    h.op = static_cast<uint16_t>(p[6] % 9);
    h.flags = p[7] & 3;
    uint32_t credit_sel = p[8];
    h.buf_alloc = credit_sel < 200 ? 256 * 1024 : credit_sel * 97u;
    h.fwd_cnt = p[9] * 1024u;
    uint32_t want = uint32_t(p[10]) * 300u;
    uint32_t avail = static_cast<uint32_t>(std::min<size_t>(size - pos, want));
    h.len = (p[11] & 1) ? avail : avail + p[11];  // sometimes lies about its length
    std::vector<uint8_t> payload(data + pos, data + pos + avail);
    pos += avail;
    guest.send_raw(h, payload);
    if (p[11] & 2) guest.pump(0);
    // Host activity around the packets.
    if (listener) {
      UniqueFd s(::accept4(listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
      if (s) accepted.push_back(std::move(s));
    }
    for (auto& s : accepted) {
      if (p[11] & 4) (void)::send(s.get(), buf, 100 + p[10], MSG_DONTWAIT | MSG_NOSIGNAL);
      if (p[11] & 8) (void)::recv(s.get(), buf, sizeof buf, MSG_DONTWAIT);
      if ((p[11] & 0x30) == 0x30) ::shutdown(s.get(), SHUT_WR);
    }
    if (client && (p[11] & 0x40)) (void)::recv(client.get(), buf, sizeof buf, MSG_DONTWAIT);
    if ((p[11] & 0xc0) == 0xc0 && !accepted.empty()) accepted.pop_back();
  }
  for (int i = 0; i < 4; ++i) guest.pump(0);
  ::unlink((uds + "_52").c_str());
  return 0;
}
