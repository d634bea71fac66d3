// Firecracker's `vsock` metrics group (src/vmm/src/devices/virtio/vsock/metrics.rs key names).
#pragma once

#include "vmm/logger/metrics.h"

namespace ember::vmm::virtio {

struct VsockCounters {
  explicit VsockCounters(Metrics& m)
      : activate_fails(m.counter("vsock", "activate_fails")),
        cfg_fails(m.counter("vsock", "cfg_fails")),
        rx_queue_event_fails(m.counter("vsock", "rx_queue_event_fails")),
        tx_queue_event_fails(m.counter("vsock", "tx_queue_event_fails")),
        ev_queue_event_fails(m.counter("vsock", "ev_queue_event_fails")),
        muxer_event_fails(m.counter("vsock", "muxer_event_fails")),
        conn_event_fails(m.counter("vsock", "conn_event_fails")),
        rx_queue_event_count(m.counter("vsock", "rx_queue_event_count")),
        tx_queue_event_count(m.counter("vsock", "tx_queue_event_count")),
        rx_bytes_count(m.counter("vsock", "rx_bytes_count")),
        tx_bytes_count(m.counter("vsock", "tx_bytes_count")),
        rx_packets_count(m.counter("vsock", "rx_packets_count")),
        tx_packets_count(m.counter("vsock", "tx_packets_count")),
        conns_added(m.counter("vsock", "conns_added")),
        conns_killed(m.counter("vsock", "conns_killed")),
        conns_removed(m.counter("vsock", "conns_removed")),
        killq_resync(m.counter("vsock", "killq_resync")),
        tx_flush_fails(m.counter("vsock", "tx_flush_fails")),
        tx_write_fails(m.counter("vsock", "tx_write_fails")),
        rx_read_fails(m.counter("vsock", "rx_read_fails")) {}

  Counter &activate_fails, &cfg_fails, &rx_queue_event_fails, &tx_queue_event_fails,
      &ev_queue_event_fails, &muxer_event_fails, &conn_event_fails, &rx_queue_event_count,
      &tx_queue_event_count, &rx_bytes_count, &tx_bytes_count, &rx_packets_count, &tx_packets_count,
      &conns_added, &conns_killed, &conns_removed, &killq_resync, &tx_flush_fails, &tx_write_fails,
      &rx_read_fails;
};

}  // namespace ember::vmm::virtio
