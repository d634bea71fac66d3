// 8250 UART, i8042 and boot timer as a guest driver sees them, with real
// pipes, eventfds and log files.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <regex>
#include <sstream>

#include "vmm/common/error.h"
#include "vmm/devices/legacy/boot_timer.h"
#include "vmm/devices/legacy/i8042.h"
#include "vmm/devices/legacy/serial.h"

namespace ember::vmm {
namespace {

uint8_t in(BusDevice& d, uint64_t offset) {
  uint8_t v = 0;
  d.read(offset, std::span<uint8_t>(&v, 1));
  return v;
}
void out(BusDevice& d, uint64_t offset, uint8_t v) { d.write(offset, std::span<const uint8_t>(&v, 1)); }

class SerialTest : public ::testing::Test {
 protected:
  SerialTest() {
    int p[2];
    if (::pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) throw common::Error("pipe");
    read_end_.reset(p[0]);
    serial_ = std::make_unique<Serial>(-1, common::UniqueFd(p[1]), metrics_);
  }
  std::string output() {
    char buf[256];
    ssize_t n = ::read(read_end_.get(), buf, sizeof buf);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
  }
  Metrics metrics_;
  common::UniqueFd read_end_;
  std::unique_ptr<Serial> serial_;
};

TEST_F(SerialTest, TransmittedBytesReachTheOutput) {
  EXPECT_EQ(in(*serial_, 5) & 0x60, 0x60) << "THR empty and transmitter idle";
  for (char c : std::string("hi\n")) out(*serial_, 0, static_cast<uint8_t>(c));
  EXPECT_EQ(output(), "hi\n");
  EXPECT_EQ(metrics_.counter("uart", "write_count").load(), 3u);
}

TEST_F(SerialTest, DivisorLatchHidesDataAndIer) {
  out(*serial_, 3, 0x80);  // DLAB
  out(*serial_, 0, 0x01);
  out(*serial_, 1, 0x00);
  EXPECT_EQ(in(*serial_, 0), 0x01);
  EXPECT_EQ(output(), "") << "a divisor write is not data";
  out(*serial_, 3, 0x03);
  EXPECT_EQ(in(*serial_, 1), 0x00);
  EXPECT_EQ(in(*serial_, 3), 0x03);
}

TEST_F(SerialTest, LoopbackMapsModemControlToStatusAsLinuxProbesIt) {
  out(*serial_, 4, 0x10 | 0x0a);  // LOOP | RTS | OUT2
  EXPECT_EQ(in(*serial_, 6) & 0xf0, 0x90);
  out(*serial_, 0, 'x');
  EXPECT_EQ(output(), "") << "loopback keeps bytes inside";
  EXPECT_EQ(in(*serial_, 5) & 1, 1);
  EXPECT_EQ(in(*serial_, 0), 'x');
  out(*serial_, 4, 0x08);
  EXPECT_EQ(in(*serial_, 6), 0xb0);
}

TEST_F(SerialTest, ScratchRegisterHoldsItsValue) {
  out(*serial_, 7, 0x5a);
  EXPECT_EQ(in(*serial_, 7), 0x5a);
}

TEST_F(SerialTest, ThrEmptyInterruptOnEnableAndAfterEachByte) {
  EXPECT_EQ(in(*serial_, 2) & 0x0f, 0x01) << "nothing pending";
  serial_->interrupt_event().consume();
  out(*serial_, 1, 0x02);  // enable THRE interrupt
  EXPECT_EQ(serial_->interrupt_event().consume(), 1u);
  EXPECT_EQ(in(*serial_, 2) & 0x0f, 0x02);
  EXPECT_EQ(in(*serial_, 2) & 0x0f, 0x01) << "reading IIR acknowledged it";
  out(*serial_, 0, 'a');
  EXPECT_EQ(serial_->interrupt_event().consume(), 1u);
}

TEST_F(SerialTest, InputRaisesDataAvailable) {
  out(*serial_, 1, 0x01);
  serial_->interrupt_event().consume();
  const uint8_t bytes[] = {'o', 'k'};
  EXPECT_EQ(serial_->enqueue_input(bytes), 2u);
  EXPECT_EQ(serial_->interrupt_event().consume(), 1u);
  EXPECT_EQ(in(*serial_, 2) & 0x0f, 0x04);
  EXPECT_EQ(in(*serial_, 5) & 1, 1);
  EXPECT_EQ(in(*serial_, 0), 'o');
  EXPECT_EQ(in(*serial_, 0), 'k');
  EXPECT_EQ(in(*serial_, 5) & 1, 0);
  EXPECT_EQ(in(*serial_, 2) & 0x0f, 0x01);
}

TEST_F(SerialTest, InputFifoIsBounded) {
  std::vector<uint8_t> many(100, 'z');
  EXPECT_EQ(serial_->enqueue_input(many), 64u);
  EXPECT_EQ(serial_->input_space(), 0u);
}

TEST_F(SerialTest, WideAccessesAreIgnored) {
  uint16_t v = 0x4142;
  serial_->write(0, std::span<const uint8_t>(reinterpret_cast<uint8_t*>(&v), 2));
  EXPECT_EQ(output(), "");
  EXPECT_EQ(metrics_.counter("uart", "missed_write_count").load(), 1u);
}

TEST_F(SerialTest, FullOutputDropsBytesInsteadOfBlocking) {
  std::string chunk(200000, 'q');
  for (char c : chunk) out(*serial_, 0, static_cast<uint8_t>(c));  // more than a pipe holds
  EXPECT_GT(metrics_.counter("uart", "missed_write_count").load(), 0u);
}

class I8042Test : public ::testing::Test {
 protected:
  I8042Test() : i8042_([this] { ++resets_; }, logger_, metrics_) {
    LoggerConfig off;
    off.level = LogLevel::kOff;
    logger_.configure(off);
  }
  Logger logger_;
  Metrics metrics_;
  int resets_ = 0;
  I8042 i8042_;
};

TEST_F(I8042Test, CommandFEPulsesTheResetLine) {
  out(i8042_, 4, 0xfe);
  EXPECT_EQ(resets_, 1);
  EXPECT_EQ(metrics_.counter("i8042", "reset_count").load(), 1u);
}

TEST_F(I8042Test, ControlRegisterReadAndWrite) {
  out(i8042_, 4, 0x20);
  EXPECT_EQ(in(i8042_, 4) & 1, 1) << "output buffer full";
  EXPECT_EQ(in(i8042_, 0), 0x05) << "POST ok, keyboard interrupt on";
  EXPECT_EQ(in(i8042_, 4) & 1, 0);
  out(i8042_, 4, 0x60);
  EXPECT_EQ(in(i8042_, 4) & 0x08, 0x08) << "expects a parameter";
  out(i8042_, 0, 0x44);
  out(i8042_, 4, 0x20);
  EXPECT_EQ(in(i8042_, 0), 0x44);
  EXPECT_EQ(resets_, 0);
}

TEST_F(I8042Test, KeyboardCommandsAreAcknowledged) {
  i8042_.interrupt_event().consume();
  out(i8042_, 0, 0xff);
  EXPECT_EQ(in(i8042_, 0), 0xfa);
  EXPECT_EQ(i8042_.interrupt_event().consume(), 1u);
}

TEST_F(I8042Test, CtrlAltDelQueuesScanCodesAndRaisesIrq1) {
  i8042_.interrupt_event().consume();
  i8042_.send_ctrl_alt_del();
  EXPECT_EQ(i8042_.interrupt_event().consume(), 1u);
  std::vector<uint8_t> codes;
  while (in(i8042_, 4) & 1) codes.push_back(in(i8042_, 0));
  EXPECT_EQ(codes, (std::vector<uint8_t>{0x14, 0x11, 0xe0, 0x71}));
  EXPECT_EQ(i8042_.interrupt_event().consume(), 3u) << "one more interrupt per byte left after a read";
}

TEST_F(I8042Test, CtrlAltDelWithAFullBufferIsAnError) {
  for (int i = 0; i < 4; ++i) i8042_.send_ctrl_alt_del();
  EXPECT_THROW(i8042_.send_ctrl_alt_del(), common::Error);
}

TEST_F(I8042Test, NoInterruptWhenTheGuestDisabledIt) {
  out(i8042_, 4, 0x60);
  out(i8042_, 0, 0x04);
  i8042_.interrupt_event().consume();
  i8042_.send_ctrl_alt_del();
  EXPECT_EQ(i8042_.interrupt_event().consume(), 0u);
}

TEST(BootTimer, LogsBootTimeOnlyForByte123AtOffsetZero) {
  char path[] = "/tmp/ember-boot-timer-XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  {
    Logger logger("boot-timer-test");
    LoggerConfig config;
    config.log_path = path;
    logger.configure(config);
    BootTimestamp start = BootTimestamp::now();
    start.wall_us -= 5000;  // pretend the build started 5 ms ago
    BootTimer timer(start, logger);
    out(timer, 0, 122);
    out(timer, 1, 123);
    uint16_t wide = 123;
    timer.write(0, std::span<const uint8_t>(reinterpret_cast<uint8_t*>(&wide), 2));
    out(timer, 0, 123);
  }
  std::ifstream in_file(path);
  std::stringstream ss;
  ss << in_file.rdbuf();
  ::unlink(path);
  std::string log = ss.str();
  std::regex line(R"(Guest-boot-time = +(\d+) us (\d+) ms, +\d+ CPU us \d+ CPU ms)");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(log, m, line)) << log;
  EXPECT_GE(std::stoul(m[1]), 5000u);
  EXPECT_EQ(std::stoul(m[2]), std::stoul(m[1]) / 1000);
  EXPECT_EQ(log.find("Guest-boot-time", log.find("Guest-boot-time") + 1), std::string::npos) << "only one line";
}

}  // namespace
}  // namespace ember::vmm
