#include "vmm/vhost_user/frontend_connection.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>

#include "vmm/common/text.h"

namespace ember::vmm::vhost_user {
namespace {

using common::hex;

bool is_power_of_two(uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

// VHOST_VRING_F_LOG in vhost_vring_addr.flags: dirty logging of the used
// ring, only meaningful with VHOST_F_LOG_ALL, which we never offer.
constexpr uint32_t kVringFlagLog = 1;

// Eventfds from QEMU are non-blocking already; a pipe or socket passed
// instead must not be able to block the backend's thread on a full buffer.
void make_nonblocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0 && !(flags & O_NONBLOCK)) ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

// SET_VRING_KICK/CALL/ERR: a ring index and the "no fd" flag, nothing else.
void expect_known_vring_bits(const Message& msg, uint64_t value) {
  if (value & ~(kVringIndexMask | kVringNoFdFlag))
    throw ProtocolError(msg.name() + ": unknown bits in " + hex(value));
}

}  // namespace

uint64_t offered_protocol_features(const virtio::VirtioDevice& device) {
  uint64_t features = (uint64_t(1) << kProtocolMq) | (uint64_t(1) << kProtocolReplyAck) |
                      (uint64_t(1) << kProtocolBackendReq) | (uint64_t(1) << kProtocolResetDevice);
  // virtio-rng has no config space (virtio 1.2 §5.4.4); QEMU warns when a
  // backend offers CONFIG for it.
  if (device.device_type() != virtio::DeviceType::kRng) features |= uint64_t(1) << kProtocolConfig;
  return features;
}

ConnectionCounters::ConnectionCounters(Metrics& m, const std::string& group)
    : activate_fails(m.counter(group, "activate_fails")),
      cfg_fails(m.counter(group, "cfg_fails")),
      connections(m.counter(group, "connections")),
      disconnects(m.counter(group, "disconnects")),
      protocol_errors(m.counter(group, "protocol_errors")),
      messages(m.counter(group, "messages")),
      activations(m.counter(group, "activations")),
      config_change_msgs(m.counter(group, "config_change_msgs")) {}

FrontendConnection::FrontendConnection(common::UniqueFd socket, virtio::VirtioDevice& device,
                                       common::EventLoop& loop, Logger& logger,
                                       ConnectionCounters& counters, std::string name,
                                       FailureHandler on_failure, std::atomic<bool>& active)
    : socket_(std::move(socket)),
      device_(device),
      loop_(loop),
      logger_(logger),
      counters_(counters),
      name_(std::move(name)),
      on_failure_(std::move(on_failure)),
      ring_count_(device.queue_max_sizes().size()),
      offered_features_(device.available_features() | (uint64_t(1) << kFeatureProtocolFeatures)),
      offered_protocol_features_(offered_protocol_features(device)),
      rings_(ring_count_),
      active_mirror_(active) {}

FrontendConnection::~FrontendConnection() {
  try {
    reset_device();
  } catch (const std::exception& e) {
    LOG_ERROR(logger_, name_ + ": resetting the device on disconnect failed: " + e.what());
  }
  for (Vring& ring : rings_) stop_kick(ring);
}

bool FrontendConnection::handle_readable() {
  for (;;) {
    Message msg;
    switch (reader_.read(socket_.get(), msg)) {
      case MessageReader::Status::kWouldBlock:
        return true;
      case MessageReader::Status::kClosed:
        return false;
      case MessageReader::Status::kMessage:
        break;
    }
    counters_.messages.inc();
    LOG_DEBUG(logger_, name_ + ": " + msg.name() + " (" + std::to_string(msg.payload.size()) +
                           " bytes, " + std::to_string(msg.fds.size()) + " fds)");
    try {
      handle(msg);
    } catch (const ProtocolError&) {
      // Best effort: a frontend waiting for an ack learns the request failed
      // before it sees the hang-up.
      if (msg.need_reply()) {
        try {
          reply_u64(msg, 1);
        } catch (const common::Error&) {
        }
      }
      throw;
    } catch (const common::Error& e) {
      throw ProtocolError(msg.name() + ": " + e.what());
    }
  }
}

void FrontendConnection::reply(const Message& request, std::span<const uint8_t> payload) {
  Header header{request.header.request, kVersion | kFlagReply,
                static_cast<uint32_t>(payload.size())};
  send_message(socket_.get(), header, payload);
}

void FrontendConnection::reply_u64(const Message& request, uint64_t value) {
  reply(request, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&value), sizeof value));
}

void FrontendConnection::handle(Message& msg) {
  // REPLY_ACK (vhost-user.rst): requests without a reply of their own are
  // acknowledged with a u64 0 when the frontend asks for it.
  bool ack = msg.need_reply();
  switch (static_cast<Request>(msg.header.request)) {
    case Request::kGetFeatures:
      msg.expect_size(0);
      msg.expect_fds(0);
      reply_u64(msg, offered_features_);
      return;
    case Request::kSetFeatures:
      set_features(msg);
      break;
    case Request::kGetProtocolFeatures:
      msg.expect_size(0);
      msg.expect_fds(0);
      reply_u64(msg, offered_protocol_features_);
      return;
    case Request::kSetProtocolFeatures:
      set_protocol_features(msg);
      break;
    case Request::kSetOwner:
      msg.expect_size(0);
      msg.expect_fds(0);
      break;
    case Request::kResetOwner:
      // Deprecated; the spec recommends treating it as "disable all rings".
      msg.expect_size(0);
      msg.expect_fds(0);
      reset_rings(false);
      break;
    case Request::kResetDevice:
      msg.expect_size(0);
      msg.expect_fds(0);
      reset_rings(true);
      break;
    case Request::kGetQueueNum:
      msg.expect_size(0);
      msg.expect_fds(0);
      reply_u64(msg, ring_count_);
      return;
    case Request::kSetMemTable:
      set_mem_table(msg);
      break;
    case Request::kSetVringNum:
      set_vring_num(msg);
      break;
    case Request::kSetVringAddr:
      set_vring_addr(msg);
      break;
    case Request::kSetVringBase:
      set_vring_base(msg);
      break;
    case Request::kGetVringBase:
      get_vring_base(msg);
      return;
    case Request::kSetVringKick:
      set_vring_kick(msg);
      break;
    case Request::kSetVringCall:
      set_vring_call(msg);
      break;
    case Request::kSetVringErr:
      set_vring_err(msg);
      break;
    case Request::kSetVringEnable:
      set_vring_enable(msg);
      break;
    case Request::kGetConfig:
      get_config(msg);
      return;
    case Request::kSetConfig:
      set_config(msg);
      break;
    case Request::kSetBackendReqFd:
      set_backend_req_fd(msg);
      break;
    default:
      // Everything else needs a feature or protocol feature we never offer
      // (logging, IOTLB, inflight tracking, in-band notifications, memory
      // slots, status), or is not a vhost-user request at all.
      throw ProtocolError(msg.name() +
                          " is not supported by this backend (its feature was not offered)");
  }
  if (ack) reply_u64(msg, 0);
}

void FrontendConnection::set_features(const Message& msg) {
  uint64_t features = msg.payload_as<uint64_t>();
  msg.expect_fds(0);
  if (features & ~offered_features_) {
    throw ProtocolError("SET_FEATURES: frontend acked features " +
                        hex(features & ~offered_features_) +
                        " that the backend did not offer (offered " + hex(offered_features_) + ")");
  }
  uint64_t device_features = features & ~(uint64_t(1) << kFeatureProtocolFeatures);
  bool protocol = features & (uint64_t(1) << kFeatureProtocolFeatures);
  if (device_features == acked_features_ && protocol == protocol_features_acked_) return;
  // Features are fixed while the device lives: other bits mean the driver
  // negotiated again, i.e. reset the device (QEMU sends the same bits on
  // every vhost_dev_start, so a pause/resume does not come here).
  reset_device();
  acked_features_ = device_features;
  protocol_features_acked_ = protocol;
  update_activation();
}

void FrontendConnection::set_protocol_features(const Message& msg) {
  uint64_t features = msg.payload_as<uint64_t>();
  msg.expect_fds(0);
  if (features & ~offered_protocol_features_) {
    throw ProtocolError("SET_PROTOCOL_FEATURES: frontend enabled protocol features " +
                        hex(features & ~offered_protocol_features_) +
                        " that the backend did not offer");
  }
  protocol_features_ = features;
}

void FrontendConnection::set_mem_table(Message& msg) {
  auto header = msg.payload_prefix_as<MemoryTableHeader>();
  if (header.num_regions > kMaxMemoryRegions) {
    throw ProtocolError("SET_MEM_TABLE: " + std::to_string(header.num_regions) +
                        " regions, at most " + std::to_string(kMaxMemoryRegions) +
                        " are supported");
  }
  msg.expect_size(sizeof(MemoryTableHeader) + header.num_regions * sizeof(MemoryRegionDesc));
  std::vector<MemoryRegionDesc> regions(header.num_regions);
  std::memcpy(regions.data(), msg.payload.data() + sizeof header,
              regions.size() * sizeof(MemoryRegionDesc));
  auto table = std::make_unique<MemoryTable>(MemoryTable::map(regions, std::move(msg.fds)));
  // The running device holds a reference to the old memory: stop its queues
  // first (QEMU sends the table on every vhost_dev_start, and again on memory
  // hotplug while running), then resume at the same positions in the new
  // table.
  stop_device();
  memory_ = std::move(table);
  LOG_INFO(logger_, name_ + ": memory table " + memory_->describe());
  if (!memory_->sealed_against_shrinking()) {
    // QEMU's memory-backend-memfd seals by default; file-backed memory
    // cannot be sealed. Truncating a mapped file makes accesses fault.
    LOG_WARN(logger_,
             name_ +
                 ": guest memory is not sealed against shrinking: a frontend that truncates it "
                 "would crash the backend with SIGBUS");
  }
  update_activation();
}

FrontendConnection::Vring& FrontendConnection::ring_for(const Message& msg, uint32_t index) {
  if (index >= ring_count_) {
    throw ProtocolError(msg.name() + ": vring index " + std::to_string(index) +
                        " out of range, the device has " + std::to_string(ring_count_) + " vrings");
  }
  return rings_[index];
}

void FrontendConnection::set_vring_num(const Message& msg) {
  auto state = msg.payload_as<VringState>();
  msg.expect_fds(0);
  Vring& ring = ring_for(msg, state.index);
  // The frontend picks the ring size (QEMU's virtio-mmio offers the guest
  // 1024 entries whatever the device): anything the split ring format
  // allows is served (virtio 1.2 §2.7: a power of two up to 32768).
  if (!is_power_of_two(state.num) || state.num > kMaxQueueSize) {
    throw ProtocolError("SET_VRING_NUM: vring " + std::to_string(state.index) + " size " +
                        std::to_string(state.num) +
                        " is not a power of two <= " + std::to_string(kMaxQueueSize));
  }
  if (ring.num == state.num) return;
  stop_device();
  ring.num = static_cast<uint16_t>(state.num);
  update_activation();
}

void FrontendConnection::set_vring_addr(const Message& msg) {
  auto addr = msg.payload_as<VringAddr>();
  msg.expect_fds(0);
  Vring& ring = ring_for(msg, addr.index);
  if (addr.flags & kVringFlagLog) {
    throw ProtocolError("SET_VRING_ADDR: vring " + std::to_string(addr.index) +
                        " asks for used-ring logging, which needs VHOST_F_LOG_ALL (not offered)");
  }
  stop_device();
  ring.addr = addr;
  // Addresses are checked against the table now when there is one (QEMU
  // always sends the table first), and again on every activation.
  if (memory_) queue_state_for(addr.index);
  update_activation();
}

void FrontendConnection::set_vring_base(const Message& msg) {
  auto state = msg.payload_as<VringState>();
  msg.expect_fds(0);
  Vring& ring = ring_for(msg, state.index);
  // Split rings: the next available index is 16 bits (packed rings, which
  // put a wrap counter in bit 15 of a wider value, are not offered).
  if (state.num > 0xffff) {
    throw ProtocolError("SET_VRING_BASE: vring " + std::to_string(state.index) + " base " +
                        std::to_string(state.num) + " does not fit a split ring's 16-bit index");
  }
  stop_device();
  ring.base = static_cast<uint16_t>(state.num);
  update_activation();
}

void FrontendConnection::get_vring_base(const Message& msg) {
  auto state = msg.payload_as<VringState>();
  msg.expect_fds(0);
  Vring& ring = ring_for(msg, state.index);
  // vhost-user.rst "Ring states": GET_VRING_BASE stops the ring, and the
  // backend reports the index it will resume from. A stop is not a reset:
  // QEMU stops every ring to pause the VM and restarts them on `cont`, and
  // the driver knows nothing of it. The device cannot run on a subset of its
  // queues, so all of them stop, keeping the device's state; stop_device()
  // saves every ring's position. Nothing is in flight (DeviceBase), so
  // next_avail is that index.
  stop_device();
  stop_kick(ring);
  ring.started = false;
  VringState out{state.index, ring.base};
  reply(msg, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&out), sizeof out));
  LOG_DEBUG(logger_, name_ + ": vring " + std::to_string(state.index) + " stopped at " +
                         std::to_string(ring.base));
}

void FrontendConnection::stop_kick(Vring& ring) {
  if (!ring.kick) return;
  loop_.remove(ring.kick.get());
  ring.kick.reset();
}

void FrontendConnection::set_vring_kick(Message& msg) {
  uint64_t value = msg.payload_as<uint64_t>();
  uint32_t index = static_cast<uint32_t>(value & kVringIndexMask);
  Vring& ring = ring_for(msg, index);
  if (value & kVringNoFdFlag) {
    throw ProtocolError("SET_VRING_KICK: vring " + std::to_string(index) +
                        " without a kick fd (polling mode) is not supported");
  }
  expect_known_vring_bits(msg, value);
  msg.expect_fds(1);
  stop_kick(ring);
  common::UniqueFd fd = std::move(msg.fds[0]);
  make_nonblocking(fd.get());
  try {
    loop_.add(fd.get(), EPOLLIN, [this, index](uint32_t) { on_kick(index); });
  } catch (const common::Error& e) {
    throw ProtocolError("SET_VRING_KICK: vring " + std::to_string(index) +
                        ": cannot watch the kick fd: " + e.what());
  }
  ring.kick = std::move(fd);
  ring.started = true;
  update_activation();
}

void FrontendConnection::on_kick(uint32_t index) {
  if (failed_) return;
  Vring& ring = rings_[index];
  // An eventfd read returns its 8-byte counter; anything else (EOF on a pipe
  // or socket a frontend passed instead) would make the loop spin.
  uint64_t count = 0;
  ssize_t n;
  do {
    n = ::read(ring.kick.get(), &count, sizeof count);
  } while (n < 0 && errno == EINTR);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
    failed_ = true;
    stop_kick(ring);
    on_failure_(
        "vring " + std::to_string(index) + " kick fd " +
        (n == 0 ? std::string("reached end of file") : "failed: " + common::errno_text(errno)) +
        " (not an eventfd)");
    return;
  }
  if (!active_) return;
  auto guard = device_.lock();
  device_.process_queue(static_cast<uint16_t>(index));
}

void FrontendConnection::set_vring_call(Message& msg) {
  uint64_t value = msg.payload_as<uint64_t>();
  uint32_t index = static_cast<uint32_t>(value & kVringIndexMask);
  Vring& ring = ring_for(msg, index);
  expect_known_vring_bits(msg, value);
  if (value & kVringNoFdFlag) {
    msg.expect_fds(0);
    ring.call.reset();  // the frontend polls the used ring
    return;
  }
  msg.expect_fds(1);
  make_nonblocking(msg.fds[0].get());
  // Replacing the call fd of a running ring is how QEMU masks and unmasks
  // notifications; the next interrupt simply goes to the new fd.
  ring.call.emplace(std::move(msg.fds[0]));
}

void FrontendConnection::set_vring_err(Message& msg) {
  uint64_t value = msg.payload_as<uint64_t>();
  uint32_t index = static_cast<uint32_t>(value & kVringIndexMask);
  Vring& ring = ring_for(msg, index);
  expect_known_vring_bits(msg, value);
  msg.expect_fds((value & kVringNoFdFlag) ? 0 : 1);
  // Kept for the frontend's sake only: devices report broken rings through
  // a config change (virtio 1.2 §2.1.2), not the error fd.
  ring.err = msg.fds.empty() ? common::UniqueFd() : std::move(msg.fds[0]);
}

void FrontendConnection::set_vring_enable(const Message& msg) {
  auto state = msg.payload_as<VringState>();
  msg.expect_fds(0);
  Vring& ring = ring_for(msg, state.index);
  if (state.num > 1) {
    throw ProtocolError("SET_VRING_ENABLE: vring " + std::to_string(state.index) + " state " +
                        std::to_string(state.num) + " is neither 0 nor 1");
  }
  ring.enabled = state.num == 1;
  update_activation();
}

ConfigHeader FrontendConnection::config_header(const Message& msg) {
  msg.expect_fds(0);
  auto header = msg.payload_prefix_as<ConfigHeader>();
  if (header.size > kMaxConfigSize || header.offset > kMaxConfigSize - header.size) {
    counters_.cfg_fails.inc();
    throw ProtocolError(msg.name() + ": range offset " + std::to_string(header.offset) + " size " +
                        std::to_string(header.size) + " exceeds the " +
                        std::to_string(kMaxConfigSize) + "-byte config space");
  }
  // GET_CONFIG carries the range's current bytes too (the frontend's buffer),
  // SET_CONFIG the new ones.
  msg.expect_size(sizeof(ConfigHeader) + header.size);
  return header;
}

void FrontendConnection::get_config(const Message& msg) {
  ConfigHeader header = config_header(msg);
  std::vector<uint8_t> out(sizeof(ConfigHeader) + header.size);
  std::memcpy(out.data(), &header, sizeof header);
  {
    auto guard = device_.lock();
    device_.read_config(header.offset, std::span<uint8_t>(out.data() + sizeof header, header.size));
  }
  reply(msg, out);
}

void FrontendConnection::set_config(const Message& msg) {
  ConfigHeader header = config_header(msg);
  // flags 1 ("live migration") may rewrite read-only fields; we do not
  // migrate, so such writes are ignored rather than applied.
  if (header.flags != 0) {
    LOG_WARN(logger_, name_ + ": ignored SET_CONFIG with flags " + std::to_string(header.flags));
    return;
  }
  auto guard = device_.lock();
  device_.write_config(header.offset,
                       std::span<const uint8_t>(msg.payload.data() + sizeof header, header.size));
}

void FrontendConnection::set_backend_req_fd(Message& msg) {
  msg.expect_size(0);
  msg.expect_fds(1);
  if (!(protocol_features_ & (uint64_t(1) << kProtocolBackendReq))) {
    throw ProtocolError("SET_BACKEND_REQ_FD without the BACKEND_REQ protocol feature negotiated");
  }
  backend_channel_ = std::move(msg.fds[0]);
}

void FrontendConnection::reset_rings(bool forget_everything) {
  reset_device();
  for (Vring& ring : rings_) {
    stop_kick(ring);
    ring.started = false;
    ring.enabled = false;
    if (forget_everything) ring = Vring{};
  }
  if (forget_everything) {
    acked_features_ = 0;
    protocol_features_acked_ = false;
  }
}

virtio::QueueState FrontendConnection::queue_state_for(uint32_t index) const {
  const Vring& ring = rings_[index];
  const VringAddr& a = *ring.addr;
  // Ring sizes from virtio 1.2 §2.7: 16-byte descriptors; avail and used
  // have flags, idx, the ring and the event-idx word. Before SET_VRING_NUM
  // only the first byte of each is checked.
  uint64_t n = ring.num;
  auto check = [&](const char* what, uint64_t user, uint64_t len) {
    auto gpa = memory_->translate(user, len == 0 ? 1 : len);
    if (!gpa) {
      throw ProtocolError("vring " + std::to_string(index) + " " + what + " at user address " +
                          hex(user) + " (+" + std::to_string(len) +
                          " bytes) is outside the memory table " + memory_->describe());
    }
    return *gpa;
  };
  virtio::QueueState state;
  state.max_size = kMaxQueueSize;
  state.size = ring.num;
  state.ready = true;
  state.desc_table = check("descriptor table", a.descriptor, n * 16);
  state.avail_ring = check("available ring", a.available, n == 0 ? 0 : 6 + 2 * n);
  state.used_ring = check("used ring", a.used, n == 0 ? 0 : 6 + 8 * n);
  state.next_avail = ring.base;
  return state;
}

bool FrontendConnection::ready_to_activate() const {
  if (!memory_ || failed_) return false;
  for (const Vring& ring : rings_) {
    // Without VHOST_USER_F_PROTOCOL_FEATURES a ring is enabled as soon as it
    // starts (vhost-user.rst "Ring states").
    bool enabled = ring.enabled || !protocol_features_acked_;
    if (!ring.started || !enabled || ring.num == 0 || !ring.addr) return false;
  }
  return true;
}

void FrontendConnection::update_activation() {
  bool ready = ready_to_activate();
  if (ready == active_) return;
  if (ready) {
    start_device();
  } else {
    stop_device();
  }
}

void FrontendConnection::start_device() {
  std::vector<virtio::QueueState> queues;
  for (size_t i = 0; i < ring_count_; ++i) {
    virtio::QueueState state = queue_state_for(static_cast<uint32_t>(i));
    // The used index lives in guest memory and survives a stop/start of the
    // backend: resume from it (the kernel's vhost does the same).
    if (state.used_ring.raw() % 4 != 0) {
      throw ProtocolError("vring " + std::to_string(i) + " used ring " +
                          to_string(state.used_ring) + " is not 4-byte aligned (virtio 1.2 §2.7)");
    }
    state.next_used = memory_->memory().load_acquire_u16(state.used_ring + 2);
    queues.push_back(state);
  }
  bool restart = device_state_ == DeviceState::kStopped;
  {
    auto guard = device_.lock();
    virtio::ActivationContext context{memory_->memory(), std::move(queues), acked_features_, *this,
                                      loop_};
    try {
      // A restart continues with the device's state when the rings pick up
      // where they stopped (a VM resume), and starts afresh otherwise.
      if (restart) {
        device_.restart_queues(std::move(context));
      } else {
        device_.activate(std::move(context));
      }
    } catch (const common::Error& e) {
      // Both leave the device reset.
      device_state_ = DeviceState::kIdle;
      counters_.activate_fails.inc();
      throw ProtocolError(std::string(restart ? "restarting" : "activating") +
                          " the device failed: " + e.what());
    }
  }
  device_state_ = DeviceState::kRunning;
  active_ = true;
  active_mirror_ = true;
  counters_.activations.inc();
  if (restart) {
    LOG_INFO(logger_, name_ + ": device rings restarted");
  } else {
    LOG_INFO(logger_, name_ + ": device activated (features " + hex(acked_features_) + ", " +
                          std::to_string(ring_count_) + " vrings)");
  }
  // Buffers the driver posted before the rings were all running got kicks
  // nobody served: look at every ring once.
  for (size_t i = 0; i < ring_count_ && active_; ++i) {
    auto guard = device_.lock();
    device_.process_queue(static_cast<uint16_t>(i));
  }
}

void FrontendConnection::stop_device() {
  if (device_state_ != DeviceState::kRunning) return;
  {
    auto guard = device_.lock();
    std::vector<virtio::QueueState> positions = device_.stop_queues();
    for (size_t i = 0; i < ring_count_ && i < positions.size(); ++i)
      rings_[i].base = positions[i].next_avail;
  }
  device_state_ = DeviceState::kStopped;
  active_ = false;
  active_mirror_ = false;
  LOG_INFO(logger_, name_ + ": device rings stopped, device state kept");
}

void FrontendConnection::reset_device() {
  if (device_state_ == DeviceState::kIdle) return;
  {
    auto guard = device_.lock();
    if (device_state_ == DeviceState::kRunning) {
      for (size_t i = 0; i < ring_count_; ++i)
        rings_[i].base = device_.queue_state(static_cast<uint16_t>(i)).next_avail;
    }
    device_.reset();
  }
  device_state_ = DeviceState::kIdle;
  active_ = false;
  active_mirror_ = false;
  LOG_INFO(logger_, name_ + ": device reset");
}

void FrontendConnection::signal_used_queue(uint16_t queue_index) {
  if (queue_index < rings_.size() && rings_[queue_index].call) rings_[queue_index].call->signal();
}

void FrontendConnection::signal_config_change() { notify_config_change(); }

bool FrontendConnection::notify_config_change() {
  if (!(protocol_features_ & (uint64_t(1) << kProtocolConfig)) || !backend_channel_) {
    if (!config_change_warned_) {
      config_change_warned_ = true;
      LOG_WARN(logger_,
               name_ + ": cannot announce a config change: the frontend did not negotiate " +
                   (backend_channel_ ? "the CONFIG protocol feature" : "a backend channel"));
    }
    return false;
  }
  // No NEED_REPLY: waiting for QEMU's answer here could deadlock with QEMU
  // waiting for ours on the main channel (it reads the config back with
  // GET_CONFIG while handling this message).
  Header header{static_cast<uint32_t>(BackendRequest::kConfigChangeMsg), kVersion, 0};
  try {
    send_message(backend_channel_.get(), header, {}, {}, "CONFIG_CHANGE_MSG");
  } catch (const common::Error& e) {
    LOG_ERROR(logger_, name_ + ": sending CONFIG_CHANGE_MSG failed, closing the backend channel: " +
                           e.what());
    backend_channel_.reset();
    return false;
  }
  counters_.config_change_msgs.inc();
  return true;
}

}  // namespace ember::vmm::vhost_user
