// i8042 keyboard controller (ports 0x60 data, 0x64 status/command; IRQ 1),
// just enough for Linux's i8042 driver with i8042.nopnp/dumbkbd, the CPU
// reset line (command 0xFE, how a `reboot=k` guest shuts down) and
// injecting Ctrl+Alt+Del.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>

#include "vmm/common/event_fd.h"
#include "vmm/devices/bus.h"
#include "vmm/logger/logger.h"
#include "vmm/logger/metrics.h"

namespace ember::vmm {

class I8042 : public BusDevice {
 public:
  // `on_reset` runs (on a vCPU thread) when the guest pulses the reset line.
  I8042(std::function<void()> on_reset, Logger& logger, Metrics& metrics);

  // Signalled for keyboard interrupts; bind it to GSI 1 with an irqfd.
  const common::EventFd& interrupt_event() const { return interrupt_; }

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

  // Queues the scan code set 2 make codes of Ctrl, Alt and Del and raises
  // IRQ 1. Throws common::Error if the output buffer has no room.
  void send_ctrl_alt_del();

 private:
  void push(uint8_t byte);
  void raise_interrupt();
  void flush();

  std::function<void()> on_reset_;
  Logger& logger_;
  common::EventFd interrupt_;
  Counter& read_count_;
  Counter& write_count_;
  Counter& missed_read_count_;
  Counter& missed_write_count_;
  Counter& reset_count_;
  Counter& error_count_;

  std::mutex mutex_;
  uint8_t status_;
  uint8_t control_;
  uint8_t output_port_ = 0;
  uint8_t pending_command_ = 0;
  std::deque<uint8_t> buffer_;
};

}  // namespace ember::vmm
