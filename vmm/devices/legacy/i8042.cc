#include "vmm/devices/legacy/i8042.h"

#include "vmm/common/error.h"

namespace ember::vmm {
namespace {

constexpr uint64_t kDataPort = 0;    // 0x60
constexpr uint64_t kStatusPort = 4;  // 0x64

// Controller commands written to 0x64.
constexpr uint8_t kCmdReadControl = 0x20;
constexpr uint8_t kCmdWriteControl = 0x60;
constexpr uint8_t kCmdReadOutputPort = 0xd0;
constexpr uint8_t kCmdWriteOutputPort = 0xd1;
constexpr uint8_t kCmdResetCpu = 0xfe;

// Status register bits.
constexpr uint8_t kStatusOutputFull = 0x01;
constexpr uint8_t kStatusCommandData = 0x08;  // next 0x60 write is a command parameter
constexpr uint8_t kStatusKeyboardEnabled = 0x10;
// Control ("command byte") bits.
constexpr uint8_t kControlKbdInterrupt = 0x01;
constexpr uint8_t kControlPostOk = 0x04;

constexpr uint8_t kKeyboardAck = 0xfa;
constexpr size_t kBufferSize = 16;

}  // namespace

I8042::I8042(std::function<void()> on_reset, Logger& logger, Metrics& metrics)
    : on_reset_(std::move(on_reset)),
      logger_(logger),
      read_count_(metrics.counter("i8042", "read_count")),
      write_count_(metrics.counter("i8042", "write_count")),
      missed_read_count_(metrics.counter("i8042", "missed_read_count")),
      missed_write_count_(metrics.counter("i8042", "missed_write_count")),
      reset_count_(metrics.counter("i8042", "reset_count")),
      error_count_(metrics.counter("i8042", "error_count")),
      status_(kStatusKeyboardEnabled),
      control_(kControlPostOk | kControlKbdInterrupt) {}

void I8042::push(uint8_t byte) {
  if (buffer_.size() < kBufferSize) buffer_.push_back(byte);
  status_ |= kStatusOutputFull;
}

void I8042::flush() {
  buffer_.clear();
  status_ &= static_cast<uint8_t>(~kStatusOutputFull);
}

void I8042::raise_interrupt() {
  if (control_ & kControlKbdInterrupt) interrupt_.signal();
}

void I8042::read(uint64_t offset, std::span<uint8_t> data) {
  if (data.size() != 1 || (offset != kDataPort && offset != kStatusPort)) {
    missed_read_count_.inc();
    return;
  }
  std::lock_guard lock(mutex_);
  read_count_.inc();
  if (offset == kStatusPort) {
    data[0] = status_;
    return;
  }
  data[0] = 0;
  if (!buffer_.empty()) {
    data[0] = buffer_.front();
    buffer_.pop_front();
  }
  if (buffer_.empty()) {
    status_ &= static_cast<uint8_t>(~kStatusOutputFull);
  } else {
    raise_interrupt();  // one interrupt per byte: the guest reads 0x60 once per IRQ
  }
}

void I8042::write(uint64_t offset, std::span<const uint8_t> data) {
  if (data.size() != 1 || (offset != kDataPort && offset != kStatusPort)) {
    missed_write_count_.inc();
    return;
  }
  bool reset = false;
  {
    std::lock_guard lock(mutex_);
    write_count_.inc();
    uint8_t value = data[0];
    if (offset == kStatusPort) {
      switch (value) {
        case kCmdResetCpu:
          reset_count_.inc();
          reset = true;
          break;
        case kCmdReadControl:
          flush();
          push(control_);
          break;
        case kCmdWriteControl:
        case kCmdWriteOutputPort:
          flush();
          status_ |= kStatusCommandData;
          pending_command_ = value;
          break;
        case kCmdReadOutputPort:
          flush();
          push(output_port_);
          break;
        default:
          break;  // other controller commands are accepted and ignored
      }
    } else if (status_ & kStatusCommandData) {
      if (pending_command_ == kCmdWriteControl) control_ = value;
      if (pending_command_ == kCmdWriteOutputPort) output_port_ = value;
      status_ &= static_cast<uint8_t>(~kStatusCommandData);
    } else {
      // A command for the keyboard itself: a dumb keyboard acknowledges everything.
      flush();
      push(kKeyboardAck);
      raise_interrupt();
    }
  }
  if (reset) {
    LOG_DEBUG(logger_, "i8042: guest asserted the CPU reset line");
    on_reset_();
  }
}

void I8042::send_ctrl_alt_del() {
  std::lock_guard lock(mutex_);
  // Ctrl (0x14), Alt (0x11), Del (0xe0 0x71): make codes of scan code set 2.
  if (kBufferSize - buffer_.size() < 4) {
    error_count_.inc();
    throw common::Error("i8042: no room in the keyboard buffer for Ctrl+Alt+Del");
  }
  for (uint8_t b : {0x14, 0x11, 0xe0, 0x71}) push(b);
  raise_interrupt();
}

}  // namespace ember::vmm
