#include "vmm/devices/virtio/rng/entropy_device.h"

#include <sys/epoll.h>
#include <sys/random.h>

#include <algorithm>
#include <cerrno>

namespace ember::vmm::virtio {

EntropyDevice::Counters::Counters(Metrics& m)
    : activate_fails(m.counter("entropy", "activate_fails")),
      entropy_event_fails(m.counter("entropy", "entropy_event_fails")),
      entropy_event_count(m.counter("entropy", "entropy_event_count")),
      entropy_bytes(m.counter("entropy", "entropy_bytes")),
      host_rng_fails(m.counter("entropy", "host_rng_fails")),
      entropy_rate_limiter_throttled(m.counter("entropy", "entropy_rate_limiter_throttled")),
      rate_limiter_event_count(m.counter("entropy", "rate_limiter_event_count")) {}

EntropyDevice::EntropyDevice(const EntropyConfig& config, Logger& logger, Metrics& metrics)
    : DeviceBase(logger, "entropy"),
      rate_limiter_(config.rate_limiter.value_or(RateLimiterConfig{})),
      counters_(metrics) {}

EntropyDevice::~EntropyDevice() { unwatch_all(); }

uint64_t EntropyDevice::available_features() const {
  return (uint64_t(1) << kFeatureVersion1) | (uint64_t(1) << kFeatureEventIdx) |
         (uint64_t(1) << kFeatureIndirectDesc);
}

void EntropyDevice::read_config(uint64_t, std::span<uint8_t> data) const {
  std::fill(data.begin(), data.end(), 0);
}

void EntropyDevice::write_config(uint64_t, std::span<const uint8_t>) {}

void EntropyDevice::on_activate() {
  watch(rate_limiter_.fd(), EPOLLIN, [this](uint32_t) {
    auto guard = lock();
    counters_.rate_limiter_event_count.inc();
    if (!rate_limiter_.event_handler()) {
      counters_.entropy_event_fails.inc();
      return;
    }
    if (activated() && !broken()) process_requests();
  });
}

void EntropyDevice::process_queue(uint16_t index) {
  counters_.entropy_event_count.inc();
  if (index != 0 || !activated() || broken()) {
    counters_.entropy_event_fails.inc();
    return;
  }
  if (rate_limiter_.is_blocked()) return;
  process_requests();
}

int64_t EntropyDevice::fill(const DescriptorChain& chain, uint32_t len) {
  iovecs_.clear();
  ChainCursor(memory(), chain.writable()).iovecs(len, iovecs_);
  int64_t total = 0;
  for (const iovec& v : iovecs_) {
    size_t done = 0;
    while (done < v.iov_len) {
      ssize_t n = ::getrandom(static_cast<uint8_t*>(v.iov_base) + done, v.iov_len - done, 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        counters_.host_rng_fails.inc();
        LOG_ERROR(logger(), name() + ": getrandom failed: " + common::errno_text(errno));
        return -1;
      }
      done += static_cast<size_t>(n);
    }
    total += static_cast<int64_t>(v.iov_len);
  }
  return total;
}

void EntropyDevice::process_requests() {
  Queue& q = queue(0);
  try {
    for (;;) {
      q.disable_notifications();
      while (q.pop(chain_)) {
        uint32_t len = std::min(chain_.writable_len(), kEntropyMaxRequest);
        if (len == 0) {
          report_invalid("request without a device-writable buffer");
          q.add_used(chain_.head(), 0);
          continue;
        }
        if (rate_limiter_.enabled()) {
          if (!rate_limiter_.consume(1, RateLimiter::TokenType::kOps)) {
            q.undo_pop();
            counters_.entropy_rate_limiter_throttled.inc();
            signal_used(0);
            return;
          }
          if (!rate_limiter_.consume(len, RateLimiter::TokenType::kBytes)) {
            rate_limiter_.manual_replenish(1, RateLimiter::TokenType::kOps);
            q.undo_pop();
            counters_.entropy_rate_limiter_throttled.inc();
            signal_used(0);
            return;
          }
        }
        int64_t written = fill(chain_, len);
        if (written > 0) counters_.entropy_bytes.inc(static_cast<uint64_t>(written));
        q.add_used(chain_.head(), written > 0 ? static_cast<uint32_t>(written) : 0);
      }
      if (q.broken() || !q.enable_notifications()) break;
    }
  } catch (const GuestMemoryError& e) {
    mark_broken(std::string("guest memory access failed: ") + e.what());
  }
  signal_used(0);
}

}  // namespace ember::vmm::virtio
