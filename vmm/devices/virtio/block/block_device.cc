#include "vmm/devices/virtio/block/block_device.h"

#include <sys/epoll.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace ember::vmm::virtio {
namespace {

// virtio 1.2 §5.2.4: capacity (le64), size_max (le32), seg_max (le32).
struct BlockConfigSpace {
  uint64_t capacity;
  uint32_t size_max;
  uint32_t seg_max;
};
static_assert(sizeof(BlockConfigSpace) == 16);

// Where the status byte goes: the last byte of the chain's writable part
// (the parser guarantees one for every request it does not call malformed).
GuestAddress status_address(const DescriptorChain& chain) {
  auto writable = chain.writable();
  for (auto it = writable.rbegin(); it != writable.rend(); ++it) {
    if (it->len) return it->addr + (it->len - 1);
  }
  return GuestAddress(0);
}

// The guest buffers a read fills or a write takes: the writable part of an
// IN chain, the readable part after the header of an OUT chain.
void data_iovecs(const GuestMemory& memory, const DescriptorChain& chain,
                 const BlockRequest& request, std::vector<iovec>& out) {
  out.clear();
  if (request.type == kBlockTypeIn) {
    ChainCursor(memory, chain.writable()).iovecs(request.data_len, out);
  } else if (request.type == kBlockTypeOut) {
    ChainCursor data(memory, chain.readable());
    data.skip(kBlockHeaderSize);
    data.iovecs(request.data_len, out);
  }
}

bool is_transfer(uint32_t type) {
  return type == kBlockTypeIn || type == kBlockTypeOut || type == kBlockTypeFlush;
}

uint64_t now_us() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000 + uint64_t(ts.tv_nsec) / 1000;
}

}  // namespace

BlockDevice::Counters::Counters(Metrics& m, const std::string& id)
    : activate_fails(m, "block_" + id, "block", "activate_fails"),
      cfg_fails(m, "block_" + id, "block", "cfg_fails"),
      no_avail_buffer(m, "block_" + id, "block", "no_avail_buffer"),
      event_fails(m, "block_" + id, "block", "event_fails"),
      execute_fails(m, "block_" + id, "block", "execute_fails"),
      invalid_reqs_count(m, "block_" + id, "block", "invalid_reqs_count"),
      flush_count(m, "block_" + id, "block", "flush_count"),
      queue_event_count(m, "block_" + id, "block", "queue_event_count"),
      rate_limiter_event_count(m, "block_" + id, "block", "rate_limiter_event_count"),
      update_count(m, "block_" + id, "block", "update_count"),
      update_fails(m, "block_" + id, "block", "update_fails"),
      read_bytes(m, "block_" + id, "block", "read_bytes"),
      write_bytes(m, "block_" + id, "block", "write_bytes"),
      read_count(m, "block_" + id, "block", "read_count"),
      write_count(m, "block_" + id, "block", "write_count"),
      rate_limiter_throttled_events(m, "block_" + id, "block", "rate_limiter_throttled_events"),
      io_engine_throttled_events(m, "block_" + id, "block", "io_engine_throttled_events"),
      remaining_reqs_count(m, "block_" + id, "block", "remaining_reqs_count"),
      read_agg(m, "block_" + id, "block", "read_agg"),
      write_agg(m, "block_" + id, "block", "write_agg") {}

BlockDevice::BlockDevice(const DriveConfig& config, Logger& logger, Metrics& metrics)
    : DeviceBase(logger, "block " + config.drive_id),
      config_(config),
      disk_(DiskFile::open(config.drive_id, config.path_on_host.value_or(""), config.is_read_only)),
      rate_limiter_(config.rate_limiter.value_or(RateLimiterConfig{})),
      counters_(metrics, config.drive_id) {
  if (config.io_engine != IoEngine::kAsync) return;
  try {
    engine_ = std::make_unique<IoUringEngine>(queue_max_sizes()[0], completions_);
    in_flight_.resize(queue_max_sizes()[0]);
  } catch (const common::Error& e) {
    // Firecracker refuses the drive here; a slower drive beats no pod.
    LOG_WARN(logger, name() + ": the Async io engine is unavailable (" + e.what() +
                         "); the drive uses the Sync engine");
  }
}

BlockDevice::~BlockDevice() {
  unwatch_all();
  wait_in_flight(false);
  flush_on_drop();
}

void BlockDevice::flush_on_drop() {
  // Writeback promises the guest nothing survives without FLUSH, but we
  // still hand the host's page cache to the disk when the drive goes away.
  if (config_.cache_type == CacheType::kWriteback && !disk_.read_only()) disk_.flush();
}

uint64_t BlockDevice::available_features() const {
  uint64_t f = (uint64_t(1) << kFeatureVersion1) | (uint64_t(1) << kFeatureEventIdx) |
               (uint64_t(1) << kFeatureIndirectDesc) | (uint64_t(1) << kBlockFeatureSegMax);
  if (config_.cache_type == CacheType::kWriteback) f |= uint64_t(1) << kBlockFeatureFlush;
  if (config_.is_read_only) f |= uint64_t(1) << kBlockFeatureRo;
  return f;
}

uint64_t BlockDevice::capacity_sectors() const { return disk_.sectors(); }

void BlockDevice::read_config(uint64_t offset, std::span<uint8_t> data) const {
  BlockConfigSpace space{disk_.sectors(), 0, kBlockSegMax};
  std::fill(data.begin(), data.end(), 0);
  if (offset >= sizeof space) return;
  size_t n = std::min<uint64_t>(data.size(), sizeof space - offset);
  std::memcpy(data.data(), reinterpret_cast<const uint8_t*>(&space) + offset, n);
}

void BlockDevice::write_config(uint64_t offset, std::span<const uint8_t> data) {
  // Every field we expose is read-only for the driver (§5.2.4).
  counters_.cfg_fails.inc();
  LOG_WARN(logger(), name() + ": ignored write of " + std::to_string(data.size()) +
                         " bytes to read-only config at " + std::to_string(offset));
}

void BlockDevice::on_activate() {
  watch(rate_limiter_.fd(), EPOLLIN, [this](uint32_t) {
    auto guard = lock();
    on_rate_limiter_timer();
  });
  if (engine_) {
    watch(completions_.fd(), EPOLLIN, [this](uint32_t) {
      auto guard = lock();
      on_completions();
    });
  }
}

void BlockDevice::on_quiesce() {
  // The ring positions about to be reported must count every chain popped.
  wait_in_flight(true);
  if (activated()) signal_used(0);
}

void BlockDevice::on_reset() { wait_in_flight(false); }

void BlockDevice::on_rate_limiter_timer() {
  counters_.rate_limiter_event_count.inc();
  if (!rate_limiter_.event_handler()) {
    counters_.event_fails.inc();
    return;
  }
  if (activated() && !broken()) process_requests();
}

void BlockDevice::process_queue(uint16_t index) {
  counters_.queue_event_count.inc();
  if (index != 0 || !activated() || broken()) {
    counters_.event_fails.inc();
    return;
  }
  if (rate_limiter_.is_blocked()) return;  // the timer will resume us
  process_requests();
}

bool BlockDevice::throttled(const BlockRequest& request) {
  if (!rate_limiter_.enabled()) return false;
  if (!rate_limiter_.consume(1, RateLimiter::TokenType::kOps)) return true;
  if ((request.type == kBlockTypeIn || request.type == kBlockTypeOut) &&
      !rate_limiter_.consume(request.data_len, RateLimiter::TokenType::kBytes)) {
    rate_limiter_.manual_replenish(1, RateLimiter::TokenType::kOps);
    return true;
  }
  return false;
}

void BlockDevice::process_requests() {
  Queue& q = queue(0);
  bool any = false;
  try {
    for (;;) {
      q.disable_notifications();
      while (q.pop(chain_)) {
        any = true;
        BlockRequest request =
            parse_block_request(memory(), chain_, disk_.sectors(), disk_.read_only());
        if (request.outcome == BlockRequest::Outcome::kExecute && throttled(request)) {
          q.undo_pop();
          counters_.rate_limiter_throttled_events.inc();
          counters_.remaining_reqs_count.inc(q.pending());
          submit_or_break();
          signal_used(0);
          return;
        }
        if (engine_ && request.outcome == BlockRequest::Outcome::kExecute &&
            submit_async(chain_, request)) {
          if (broken()) break;
          continue;
        }
        q.add_used(chain_.head(), execute(chain_, request));
      }
      if (q.broken() || broken() || !q.enable_notifications()) break;
    }
  } catch (const GuestMemoryError& e) {
    // Chains are validated when popped; this means memory changed under us.
    mark_broken(std::string("guest memory access failed: ") + e.what());
  }
  submit_or_break();
  if (!any) counters_.no_avail_buffer.inc();
  signal_used(0);
}

bool BlockDevice::submit_async(const DescriptorChain& chain, const BlockRequest& request) {
  if (!is_transfer(request.type)) return false;
  if (request.type == kBlockTypeFlush && disk_.read_only()) return false;
  InFlight& f = in_flight_.at(chain.head());
  if (f.busy) {
    // The driver offered a chain the device still owns (virtio 1.2 §2.7.13).
    mark_broken("descriptor " + std::to_string(chain.head()) + " offered again while in flight");
    return true;
  }
  f.type = request.type;
  f.data_len = request.data_len;
  f.sector = request.sector;
  f.status = status_address(chain);
  data_iovecs(memory(), chain, request, f.iov);
  auto prepare = [&] {
    switch (request.type) {
      case kBlockTypeIn:
        return engine_->prepare_read(disk_.fd(), f.iov, request.offset(), chain.head());
      case kBlockTypeOut:
        return engine_->prepare_write(disk_.fd(), f.iov, request.offset(), chain.head());
      default:
        return engine_->prepare_flush(disk_.fd(), chain.head());
    }
  };
  if (!prepare()) {
    // The submission ring is as deep as the queue, so this means the kernel
    // has not taken the last batch yet: hand it over and try once more.
    if (submit_queued() < 0 || !prepare()) {
      counters_.io_engine_throttled_events.inc();
      return false;
    }
  }
  f.started_us = now_us();
  f.busy = true;
  ++in_flight_count_;
  submissions_queued_ = true;
  return true;
}

int BlockDevice::submit_queued() {
  if (!submissions_queued_) return 0;
  int rc = engine_->submit();
  if (rc == -EBUSY || rc == -EAGAIN) {
    // Completions must be reaped before the kernel takes more.
    engine_->reap([this](uint64_t tag, int32_t result) { complete_async(tag, result); }, true);
    rc = engine_->submit();
  }
  if (rc == 0) submissions_queued_ = false;
  return rc;
}

void BlockDevice::submit_or_break() {
  int rc = submit_queued();
  if (rc < 0) mark_broken("io_uring submit failed: " + common::errno_text(-rc));
}

void BlockDevice::abandon_engine() {
  LOG_ERROR(logger(), name() + ": the io_uring refused " +
                          "its queued requests; dropping " + std::to_string(in_flight_count_) +
                          " requests with a new ring");
  // Tearing the ring down drops what it never took and waits out the rest.
  engine_.reset();
  release_all();
  submissions_queued_ = false;
  try {
    engine_ = std::make_unique<IoUringEngine>(static_cast<unsigned>(in_flight_.size()), completions_);
  } catch (const common::Error& e) {
    LOG_WARN(logger(), name() + ": " + e.what() + "; the drive uses the Sync engine");
  }
}

void BlockDevice::on_completions() {
  completions_.consume();
  if (!engine_) return;  // replaced by the Sync engine meanwhile
  size_t n = engine_->reap([this](uint64_t tag, int32_t result) { complete_async(tag, result); });
  if (n && activated()) signal_used(0);
}

BlockDevice::InFlight* BlockDevice::release(uint64_t head) {
  if (head >= in_flight_.size() || !in_flight_[head].busy) return nullptr;
  in_flight_[head].busy = false;
  --in_flight_count_;
  return &in_flight_[head];
}

void BlockDevice::release_all() {
  for (InFlight& f : in_flight_) f.busy = false;
  in_flight_count_ = 0;
}

void BlockDevice::complete_async(uint64_t head, int32_t result) {
  InFlight* slot = release(head);
  if (!slot) return;
  const InFlight& f = *slot;
  int err = result < 0 ? result : 0;
  if (result >= 0 && f.type != kBlockTypeFlush && static_cast<uint32_t>(result) != f.data_len)
    err = -EIO;  // the file ended (or filled up) under the request
  Outcome outcome = finished(f.type, f.data_len, f.sector, f.started_us, err);
  if (!activated() || broken()) return;
  try {
    memory().write(f.status, std::span<const uint8_t>(&outcome.status, 1));
    queue(0).add_used(static_cast<uint16_t>(head), outcome.data_written + 1);
  } catch (const GuestMemoryError& e) {
    mark_broken(std::string("guest memory access failed: ") + e.what());
  }
}

void BlockDevice::wait_in_flight(bool deliver) {
  if (!engine_) return;
  // Requests the kernel never took would be waited for in vain.
  if (submit_queued() < 0) return abandon_engine();
  while (in_flight_count_ > 0) {
    size_t n = engine_->reap(
        [&](uint64_t tag, int32_t result) {
          if (deliver) {
            complete_async(tag, result);
          } else {
            release(tag);
          }
        },
        /*wait=*/true);
    if (n == 0) {
      LOG_ERROR(logger(), name() + ": lost " + std::to_string(in_flight_count_) +
                              " io_uring completions");
      release_all();
    }
  }
}

uint32_t BlockDevice::execute(const DescriptorChain& chain, const BlockRequest& request) {
  auto finish = [&](uint8_t code, uint32_t data_written) {
    memory().write(status_address(chain), std::span<const uint8_t>(&code, 1));
    return data_written + 1;
  };

  switch (request.outcome) {
    case BlockRequest::Outcome::kMalformed:
      counters_.invalid_reqs_count.inc();
      report_invalid(request.error);
      return 0;
    case BlockRequest::Outcome::kFail:
      if (request.status == kBlockStatusUnsupported) {
        LOG_DEBUG(logger(), name() + ": " + request.error);
      } else {
        counters_.invalid_reqs_count.inc();
        report_invalid(request.error);
      }
      return finish(request.status, 0);
    case BlockRequest::Outcome::kExecute:
      break;
  }

  int err = 0;
  uint64_t start = now_us();
  switch (request.type) {
    case kBlockTypeIn:
      data_iovecs(memory(), chain, request, iovecs_);
      err = disk_.read_at(iovecs_, request.offset());
      break;
    case kBlockTypeOut:
      data_iovecs(memory(), chain, request, iovecs_);
      err = disk_.write_at(iovecs_, request.offset());
      break;
    case kBlockTypeFlush:
      err = disk_.read_only() ? 0 : disk_.flush();
      break;
    case kBlockTypeGetId:
      ChainCursor(memory(), chain.writable()).write(disk_.id());
      return finish(kBlockStatusOk, static_cast<uint32_t>(kBlockIdBytes));
  }
  Outcome outcome = finished(request.type, request.data_len, request.sector, start, err);
  return finish(outcome.status, outcome.data_written);
}

BlockDevice::Outcome BlockDevice::finished(uint32_t type, uint32_t data_len, uint64_t sector,
                                           uint64_t started_us, int err) {
  switch (type) {
    case kBlockTypeIn:
      counters_.read_agg.record(now_us() - started_us);
      if (err == 0) {
        counters_.read_bytes.inc(data_len);
        counters_.read_count.inc();
        return {kBlockStatusOk, data_len};
      }
      break;
    case kBlockTypeOut:
      counters_.write_agg.record(now_us() - started_us);
      if (err == 0) {
        counters_.write_bytes.inc(data_len);
        counters_.write_count.inc();
        return {kBlockStatusOk, 0};
      }
      break;
    case kBlockTypeFlush:
      counters_.flush_count.inc();
      if (err == 0) return {kBlockStatusOk, 0};
      break;
  }
  counters_.execute_fails.inc();
  LOG_ERROR(logger(), name() + ": request type " + std::to_string(type) + " at sector " +
                          std::to_string(sector) + " failed: " + common::errno_text(-err));
  return {kBlockStatusIoErr, 0};
}

void BlockDevice::update(const DriveUpdate& update) {
  std::optional<DiskFile> replacement;
  if (update.path_on_host) {
    try {
      replacement = DiskFile::open(config_.drive_id, *update.path_on_host, config_.is_read_only);
    } catch (const common::Error&) {
      counters_.update_fails.inc();
      throw;
    }
  }
  if (replacement) {
    // Requests in flight finish on the file they were issued against.
    wait_in_flight(true);
    if (activated()) signal_used(0);
    flush_on_drop();
    disk_ = std::move(*replacement);
    config_.path_on_host = update.path_on_host;
  }
  if (update.rate_limiter) {
    rate_limiter_.update(*update.rate_limiter);
    if (!config_.rate_limiter) config_.rate_limiter = RateLimiterConfig{};
    if (update.rate_limiter->bandwidth)
      config_.rate_limiter->bandwidth = update.rate_limiter->bandwidth;
    if (update.rate_limiter->ops) config_.rate_limiter->ops = update.rate_limiter->ops;
  }
  counters_.update_count.inc();
  LOG_INFO(logger(), name() + ": updated" +
                         (replacement ? " backing file to " + disk_.path() : std::string()));
  // §5.2.4 / §4.2.2: the guest re-reads capacity on a config change.
  if (replacement && activated()) interrupt().signal_config_change();
}

}  // namespace ember::vmm::virtio
