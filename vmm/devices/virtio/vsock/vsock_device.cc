#include "vmm/devices/virtio/vsock/vsock_device.h"

#include <algorithm>
#include <cstring>

namespace ember::vmm::virtio {

VsockDevice::VsockDevice(const VsockConfig& config, Logger& logger, Metrics& metrics)
    : DeviceBase(logger, "vsock"),
      config_(config),
      counters_(metrics),
      muxer_(config.guest_cid, config.uds_path, logger, counters_) {}

VsockDevice::~VsockDevice() {
  unwatch_all();
  muxer_.stop();
}

uint64_t VsockDevice::available_features() const {
  return (uint64_t(1) << kFeatureVersion1) | (uint64_t(1) << kFeatureInOrder) |
         (uint64_t(1) << kFeatureEventIdx) | (uint64_t(1) << kFeatureIndirectDesc);
}

void VsockDevice::read_config(uint64_t offset, std::span<uint8_t> data) const {
  // virtio 1.2 §5.10.4: struct virtio_vsock_config { le64 guest_cid; }
  uint64_t cid = config_.guest_cid;
  std::fill(data.begin(), data.end(), 0);
  if (offset >= sizeof cid) return;
  std::memcpy(data.data(), reinterpret_cast<const uint8_t*>(&cid) + offset,
              std::min<uint64_t>(data.size(), sizeof cid - offset));
}

void VsockDevice::write_config(uint64_t, std::span<const uint8_t>) { counters_.cfg_fails.inc(); }

void VsockDevice::on_activate() {
  muxer_.start(loop(), VsockMuxer::Hooks{[this] { return lock(); },
                                         [this] {
                                           if (activated() && !broken()) process_rx();
                                         }});
}

void VsockDevice::on_reset() { muxer_.stop(); }

void VsockDevice::on_stop_queues() { muxer_.pause(); }

void VsockDevice::on_restart_queues() {
  // Packets that became ready while stopped go out from the transport's
  // process_queue() round after the restart, or from the rx_ready hook here.
  muxer_.resume();
}

void VsockDevice::process_queue(uint16_t index) {
  if (!activated() || broken()) return;
  switch (index) {
    case kRxQueue:
      counters_.rx_queue_event_count.inc();
      process_rx();
      break;
    case kTxQueue:
      counters_.tx_queue_event_count.inc();
      process_tx();
      break;
    case kEventQueue:
      // The event queue only carries TRANSPORT_RESET after a snapshot
      // restore; the driver's buffers wait there until then.
      break;
    default:
      counters_.ev_queue_event_fails.inc();
  }
}

void VsockDevice::process_tx() {
  Queue& q = queue(kTxQueue);
  try {
    for (;;) {
      q.disable_notifications();
      while (q.pop(chain_)) {
        counters_.tx_packets_count.inc();
        std::string why;
        if (auto packet = parse_tx_packet(memory(), chain_, why)) {
          muxer_.on_tx_packet(*packet);
        } else {
          report_invalid(why);
        }
        q.add_used(chain_.head(), 0);
      }
      if (q.broken() || !q.enable_notifications()) break;
    }
  } catch (const GuestMemoryError& e) {
    mark_broken(std::string("guest memory access failed: ") + e.what());
  }
  signal_used(kTxQueue);
  if (muxer_.has_pending_rx() && !broken()) process_rx();
}

void VsockDevice::process_rx() {
  Queue& q = queue(kRxQueue);
  try {
    for (;;) {
      bool out_of_buffers = false;
      while (muxer_.has_pending_rx()) {
        if (!q.pop(chain_)) {
          out_of_buffers = true;
          break;
        }
        if (chain_.writable_len() < sizeof(VsockHeader)) {
          report_invalid("RX buffer of " + std::to_string(chain_.writable_len()) +
                         " bytes cannot hold a header");
          q.add_used(chain_.head(), 0);
          continue;
        }
        uint32_t len = muxer_.fill_rx(memory(), chain_);
        if (len == 0) {
          q.undo_pop();
          break;
        }
        counters_.rx_packets_count.inc();
        q.add_used(chain_.head(), len);
      }
      // Out of buffers: re-arm the driver's kick, and go on if buffers
      // arrived in the meantime.
      if (!out_of_buffers || q.broken() || !q.enable_notifications()) break;
    }
  } catch (const GuestMemoryError& e) {
    mark_broken(std::string("guest memory access failed: ") + e.what());
  }
  signal_used(kRxQueue);
}

}  // namespace ember::vmm::virtio
