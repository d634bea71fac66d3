#include "vmm/devices/legacy/serial.h"

#include <unistd.h>

#include <cerrno>

namespace ember::vmm {
namespace {

// Register offsets (PC16550D data sheet, table 2).
constexpr uint8_t kData = 0;  // RBR/THR, DLL when DLAB
constexpr uint8_t kIer = 1;   // DLM when DLAB
constexpr uint8_t kIir = 2;   // FCR on write
constexpr uint8_t kLcr = 3;
constexpr uint8_t kMcr = 4;
constexpr uint8_t kLsr = 5;
constexpr uint8_t kMsr = 6;
constexpr uint8_t kScr = 7;

constexpr uint8_t kIerRxAvailable = 0x01;
constexpr uint8_t kIerThrEmpty = 0x02;
constexpr uint8_t kIerMask = 0x0f;
constexpr uint8_t kIirNone = 0x01;
constexpr uint8_t kIirThrEmpty = 0x02;
constexpr uint8_t kIirRxAvailable = 0x04;
constexpr uint8_t kIirFifoEnabled = 0xc0;
constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kLsrDataReady = 0x01;
constexpr uint8_t kLsrThrEmpty = 0x20;
constexpr uint8_t kLsrIdle = 0x40;
constexpr uint8_t kMcrLoop = 0x10;
constexpr size_t kRxFifoSize = 64;

}  // namespace

Serial::Serial(int out_fd, common::UniqueFd owned_out, Metrics& metrics)
    : out_fd_(owned_out ? owned_out.get() : out_fd),
      owned_out_(std::move(owned_out)),
      read_count_(metrics.counter("uart", "read_count")),
      write_count_(metrics.counter("uart", "write_count")),
      missed_read_count_(metrics.counter("uart", "missed_read_count")),
      missed_write_count_(metrics.counter("uart", "missed_write_count")),
      error_count_(metrics.counter("uart", "error_count")) {}

void Serial::read(uint64_t offset, std::span<uint8_t> data) {
  if (data.size() != 1 || offset > kScr) {
    missed_read_count_.inc();
    return;
  }
  std::lock_guard lock(mutex_);
  data[0] = read_register(static_cast<uint8_t>(offset));
}

void Serial::write(uint64_t offset, std::span<const uint8_t> data) {
  if (data.size() != 1 || offset > kScr) {
    missed_write_count_.inc();
    return;
  }
  std::lock_guard lock(mutex_);
  write_register(static_cast<uint8_t>(offset), data[0]);
}

uint8_t Serial::read_register(uint8_t reg) {
  switch (reg) {
    case kData: {
      if (lcr_ & kLcrDlab) return dll_;
      uint8_t byte = 0;
      if (!rx_.empty()) {
        byte = rx_.front();
        rx_.pop_front();
        read_count_.inc();
      }
      update_interrupt();
      return byte;
    }
    case kIer:
      return (lcr_ & kLcrDlab) ? dlm_ : ier_;
    case kIir: {
      uint8_t value = iir_ | kIirFifoEnabled;
      // Reading IIR acknowledges a THR-empty interrupt (16550 §8.6.3).
      if (iir_ == kIirThrEmpty) {
        thr_empty_pending_ = false;
        update_interrupt();
      }
      return value;
    }
    case kLcr:
      return lcr_;
    case kMcr:
      return mcr_;
    case kLsr:
      // Bytes leave at once: the transmitter is always empty and idle.
      return kLsrThrEmpty | kLsrIdle | (rx_.empty() ? 0 : kLsrDataReady);
    case kMsr:
      if (mcr_ & kMcrLoop) {
        // Loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD (Linux's 8250
        // autoconfig checks exactly this mapping).
        return static_cast<uint8_t>(((mcr_ & 0x01) << 5) | ((mcr_ & 0x02) << 3) | ((mcr_ & 0x04) << 4) |
                                    ((mcr_ & 0x08) << 4));
      }
      return msr_;
    case kScr:
      return scr_;
  }
  return 0;
}

void Serial::write_register(uint8_t reg, uint8_t value) {
  switch (reg) {
    case kData:
      if (lcr_ & kLcrDlab) {
        dll_ = value;
        return;
      }
      if (mcr_ & kMcrLoop) {
        if (rx_.size() < kRxFifoSize) rx_.push_back(value);
      } else {
        emit(value);
      }
      // The byte leaves at once: THR is empty again.
      thr_empty_pending_ = true;
      update_interrupt();
      return;
    case kIer:
      if (lcr_ & kLcrDlab) {
        dlm_ = value;
        return;
      }
      // Enabling the THR-empty interrupt while THR is empty raises it (16550 §8.6.3).
      if ((value & kIerThrEmpty) && !(ier_ & kIerThrEmpty)) thr_empty_pending_ = true;
      ier_ = value & kIerMask;
      update_interrupt();
      return;
    case kIir:
      return;  // FCR: the FIFOs are always on
    case kLcr:
      lcr_ = value;
      return;
    case kMcr:
      mcr_ = value & 0x1f;
      return;
    case kLsr:
    case kMsr:
      return;  // read-only
    case kScr:
      scr_ = value;
      return;
  }
}

void Serial::update_interrupt() {
  uint8_t old = iir_;
  if ((ier_ & kIerRxAvailable) && !rx_.empty()) {
    iir_ = kIirRxAvailable;
  } else if ((ier_ & kIerThrEmpty) && thr_empty_pending_) {
    iir_ = kIirThrEmpty;
  } else {
    iir_ = kIirNone;
  }
  // The IRQ is an edge into the IOAPIC: raise it for every new condition.
  if (iir_ != kIirNone && (iir_ != old || old == kIirNone || iir_ == kIirThrEmpty)) interrupt_.signal();
}

void Serial::emit(uint8_t byte) {
  if (out_fd_ < 0) return;
  for (;;) {
    ssize_t n = ::write(out_fd_, &byte, 1);
    if (n == 1) {
      write_count_.inc();
      return;
    }
    if (n < 0 && errno == EINTR) continue;
    // A full non-blocking pipe or a closed reader: drop the byte rather than stall the vCPU.
    missed_write_count_.inc();
    if (n < 0 && errno != EAGAIN) error_count_.inc();
    return;
  }
}

size_t Serial::enqueue_input(std::span<const uint8_t> bytes) {
  std::lock_guard lock(mutex_);
  size_t n = 0;
  for (uint8_t b : bytes) {
    if (rx_.size() >= kRxFifoSize) break;
    rx_.push_back(b);
    ++n;
  }
  if (n > 0) update_interrupt();
  return n;
}

size_t Serial::input_space() const {
  std::lock_guard lock(mutex_);
  return kRxFifoSize - rx_.size();
}

}  // namespace ember::vmm
