// 8250/16550A UART (COM1 at port 0x3f8, IRQ 4), enough of it for Linux's 8250
// driver and for polling payloads: THR/RBR, IER, IIR/FCR, LCR, MCR with
// loopback, LSR, MSR, SCR and the divisor latch. Output goes to a file
// descriptor; input is queued by the VMM's device thread.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <span>

#include "vmm/common/event_fd.h"
#include "vmm/common/unique_fd.h"
#include "vmm/devices/bus.h"
#include "vmm/logger/metrics.h"

namespace ember::vmm {

class Serial : public BusDevice {
 public:
  // Writes guest output to `out_fd` (borrowed, e.g. stdout) or, when
  // `owned_out` is valid, to that fd.
  Serial(int out_fd, common::UniqueFd owned_out, Metrics& metrics);

  // Signalled when the UART raises its interrupt; bind it to GSI 4 with an irqfd.
  const common::EventFd& interrupt_event() const { return interrupt_; }

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

  // Queues bytes for the guest to read (from the VMM thread); raises the
  // data-available interrupt when enabled. Returns how many bytes fit.
  size_t enqueue_input(std::span<const uint8_t> bytes);
  // How many more input bytes the receive FIFO takes.
  size_t input_space() const;

 private:
  uint8_t read_register(uint8_t reg);
  void write_register(uint8_t reg, uint8_t value);
  void update_interrupt();  // recomputes IIR and raises the IRQ on a new condition
  void emit(uint8_t byte);

  mutable std::mutex mutex_;
  int out_fd_;
  common::UniqueFd owned_out_;
  common::EventFd interrupt_;
  Counter& read_count_;
  Counter& write_count_;
  Counter& missed_read_count_;
  Counter& missed_write_count_;
  Counter& error_count_;

  uint8_t ier_ = 0;
  uint8_t iir_ = 0x01;  // no interrupt pending
  uint8_t lcr_ = 0x03;  // 8N1
  uint8_t mcr_ = 0x08;  // OUT2: the PC routes the IRQ line through it
  uint8_t msr_ = 0xb0;  // DCD, DSR, CTS
  uint8_t scr_ = 0;
  uint8_t dll_ = 0x0c;  // 9600 baud
  uint8_t dlm_ = 0;
  bool thr_empty_pending_ = false;
  std::deque<uint8_t> rx_;
};

}  // namespace ember::vmm
