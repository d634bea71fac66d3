// virtio-blk (virtio 1.2 §5.2) over a host file, with Firecracker's behaviour
// (reference/firecracker-compat.md §4): one 256-entry queue, the Sync engine
// (pread/pwrite/fsync on the device thread) or the Async one (io_uring,
// completions on the device thread's loop), read-only drives, Unsafe or
// Writeback caching, GET_ID, a token-bucket rate limiter, and post-boot
// updates of the backing file (PATCH /drives/{id}) announced to the guest by
// a config-change interrupt.
#pragma once

#include <memory>
#include <string>

#include "vmm/devices/virtio/block/disk_file.h"
#include "vmm/devices/virtio/block/io_uring_engine.h"
#include "vmm/devices/virtio/block/request.h"
#include "vmm/devices/virtio/device_base.h"
#include "vmm/rate_limiter/rate_limiter.h"
#include "vmm/vmm_config/vmm_config.h"

namespace ember::vmm::virtio {

// virtio 1.2 §5.2.3 feature bits.
inline constexpr unsigned kBlockFeatureSegMax = 2;
inline constexpr unsigned kBlockFeatureRo = 5;
inline constexpr unsigned kBlockFeatureFlush = 9;

// Segments per request we advertise (VIRTIO_BLK_F_SEG_MAX). Without it Linux
// sends one segment per request, i.e. mostly 4 KiB I/O.
inline constexpr uint32_t kBlockSegMax = 126;

class BlockDevice : public DeviceBase {
 public:
  // Opens config.path_on_host; throws common::Error naming the drive and path.
  BlockDevice(const DriveConfig& config, Logger& logger, Metrics& metrics);
  ~BlockDevice() override;

  DeviceType device_type() const override { return DeviceType::kBlock; }
  uint64_t available_features() const override;
  std::vector<uint16_t> queue_max_sizes() const override { return {256}; }
  void read_config(uint64_t offset, std::span<uint8_t> data) const override;
  void write_config(uint64_t offset, std::span<const uint8_t> data) override;
  void process_queue(uint16_t index) override;

  // PATCH /drives/{id} after boot; the caller holds lock() (the builder
  // calls it on the device thread, vmm/builder/virtio_devices.h). A new
  // path_on_host is opened first (errors leave the drive unchanged), then
  // swapped in; capacity and ID are recomputed and a config-change interrupt
  // tells the guest to re-read the capacity. A rate limiter patch follows
  // PATCH semantics (omitted bucket unchanged, size/refill 0 disables).
  void update(const DriveUpdate& update);

  const std::string& drive_id() const { return config_.drive_id; }
  const DriveConfig& config() const { return config_; }
  uint64_t capacity_sectors() const;
  int rate_limiter_fd() const { return rate_limiter_.fd(); }
  // Whether requests go through io_uring (io_engine Async, and the kernel
  // allowed a ring); how many of them are in flight.
  bool async() const { return engine_ != nullptr; }
  size_t requests_in_flight() const { return in_flight_count_; }

 private:
  struct Counters {
    Counters(Metrics& m, const std::string& drive_id);
    DeviceCounter activate_fails, cfg_fails, no_avail_buffer, event_fails, execute_fails,
        invalid_reqs_count, flush_count, queue_event_count, rate_limiter_event_count, update_count,
        update_fails, read_bytes, write_bytes, read_count, write_count,
        rate_limiter_throttled_events, io_engine_throttled_events, remaining_reqs_count;
    DeviceLatency read_agg, write_agg;
  };

  // A finished read, write or flush (either engine): metrics, the log line of
  // a failure, and what goes back to the driver.
  struct Outcome {
    uint8_t status;
    uint32_t data_written;  // bytes of the writable part before the status byte
  };
  // A request the Async engine has in flight, by its chain's head.
  struct InFlight {
    bool busy = false;
    uint32_t type = 0;
    uint32_t data_len = 0;
    uint64_t sector = 0;
    GuestAddress status;
    uint64_t started_us = 0;
    std::vector<iovec> iov;  // the kernel reads it until the completion
  };

  void on_activate() override;
  void on_quiesce() override;
  void on_reset() override;
  void count_invalid() override { counters_.invalid_reqs_count.inc(); }
  void count_activate_fail() override { counters_.activate_fails.inc(); }
  void process_requests();
  // Runs one parsed request; returns the used length (bytes written to the
  // chain's writable part, status included).
  uint32_t execute(const DescriptorChain& chain, const BlockRequest& request);
  Outcome finished(uint32_t type, uint32_t data_len, uint64_t sector, uint64_t started_us, int err);
  // Async: queues the request; false when it must run synchronously.
  bool submit_async(const DescriptorChain& chain, const BlockRequest& request);
  // Hands the queued requests to the kernel: 0, or -errno (they stay queued).
  int submit_queued();
  void submit_or_break();
  // After the kernel refused a batch: a new ring, every request in flight
  // dropped (their chains are never used; the device is broken or resetting).
  void abandon_engine();
  void on_completions();
  // Frees the slot of the chain `head` (nullptr when nothing is in flight
  // there) and returns what it held; release_all() frees every slot.
  InFlight* release(uint64_t head);
  void release_all();
  void complete_async(uint64_t head, int32_t result);
  // Waits for every request in flight: completed into the used ring when
  // `deliver`, else dropped (a reset: the driver forgets them too).
  void wait_in_flight(bool deliver);
  bool throttled(const BlockRequest& request);
  void on_rate_limiter_timer();
  void flush_on_drop();

  DriveConfig config_;
  DiskFile disk_;
  RateLimiter rate_limiter_;
  Counters counters_;
  DescriptorChain chain_;      // reused between requests
  std::vector<iovec> iovecs_;  // reused between requests
  common::EventFd completions_;  // the Async engine's; survives its replacement
  std::unique_ptr<IoUringEngine> engine_;
  std::vector<InFlight> in_flight_;
  size_t in_flight_count_ = 0;
  bool submissions_queued_ = false;
};

}  // namespace ember::vmm::virtio
