// The virtio-mmio transport against a small device defined here, with real
// guest memory and a real event loop (run by the test on its own thread, as
// the VMM's device thread would).
#include "vmm/devices/virtio/mmio/mmio_transport.h"

#include <gtest/gtest.h>

#include <cstring>

#include "vmm/common/error.h"

namespace ember::vmm::virtio {
namespace {

struct Calls {
  int activations = 0;
  int resets = 0;
  std::vector<uint16_t> processed;
  uint64_t acked = 0;
  std::vector<QueueState> queues;
  bool fail_activation = false;
  bool needs_reset = false;
  std::vector<uint8_t> config = {1, 2, 3, 4, 5, 6, 7, 8};
};

class FakeDevice : public VirtioDevice {
 public:
  explicit FakeDevice(Calls& calls) : calls_(calls) {}
  DeviceType device_type() const override { return DeviceType::kRng; }
  uint64_t available_features() const override { return (1ULL << 3) | (1ULL << kFeatureEventIdx); }
  std::vector<uint16_t> queue_max_sizes() const override { return {256, 64}; }
  void read_config(uint64_t offset, std::span<uint8_t> data) const override {
    for (size_t i = 0; i < data.size(); ++i) data[i] = offset + i < calls_.config.size() ? calls_.config[offset + i] : 0;
  }
  void write_config(uint64_t offset, std::span<const uint8_t> data) override {
    for (size_t i = 0; i < data.size() && offset + i < calls_.config.size(); ++i) calls_.config[offset + i] = data[i];
  }
  void activate(ActivationContext ctx) override {
    if (calls_.fail_activation) throw common::Error("cannot serve this");
    ++calls_.activations;
    calls_.acked = ctx.acked_features;
    calls_.queues = ctx.queues;
    interrupt_ = &ctx.interrupt;
    activated_ = true;
  }
  bool activated() const override { return activated_; }
  void process_queue(uint16_t index) override {
    calls_.processed.push_back(index);
    interrupt_->signal_used_queue(index);
  }
  QueueState queue_state(uint16_t index) const override { return calls_.queues.at(index); }
  void reset() override {
    ++calls_.resets;
    activated_ = false;
  }
  bool needs_reset() const override { return calls_.needs_reset; }

 private:
  Calls& calls_;
  Interrupt* interrupt_ = nullptr;
  bool activated_ = false;
};

class MmioTransportTest : public ::testing::Test {
 protected:
  MmioTransportTest()
      : memory_(GuestMemory::anonymous({{GuestAddress(0), 1 << 20}})),
        transport_(std::make_unique<FakeDevice>(calls_), memory_, loop_, logger_) {
    LoggerConfig off;
    off.level = LogLevel::kOff;
    logger_.configure(off);
  }

  uint32_t rd(uint64_t offset) {
    uint32_t v = 0;
    transport_.read(offset, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&v), 4));
    return v;
  }
  void wr(uint64_t offset, uint32_t v) {
    transport_.write(offset, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&v), 4));
  }
  // Runs what the transport handed to the device thread (posted tasks and
  // signalled eventfds), as the VMM's device thread would.
  void run_loop() {
    for (int i = 0; i < 4; ++i) loop_.run_once(0);
  }
  void negotiate(uint64_t features) {
    wr(kMmioStatus, kStatusAcknowledge);
    wr(kMmioStatus, kStatusAcknowledge | kStatusDriver);
    wr(kMmioDriverFeaturesSel, 0);
    wr(kMmioDriverFeatures, static_cast<uint32_t>(features));
    wr(kMmioDriverFeaturesSel, 1);
    wr(kMmioDriverFeatures, static_cast<uint32_t>(features >> 32));
    wr(kMmioStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
  }
  void setup_queue(uint32_t index, uint32_t size, uint64_t desc, uint64_t avail, uint64_t used) {
    wr(kMmioQueueSel, index);
    wr(kMmioQueueNum, size);
    wr(kMmioQueueDescLow, static_cast<uint32_t>(desc));
    wr(kMmioQueueDescHigh, static_cast<uint32_t>(desc >> 32));
    wr(kMmioQueueDriverLow, static_cast<uint32_t>(avail));
    wr(kMmioQueueDriverHigh, static_cast<uint32_t>(avail >> 32));
    wr(kMmioQueueDeviceLow, static_cast<uint32_t>(used));
    wr(kMmioQueueDeviceHigh, static_cast<uint32_t>(used >> 32));
    wr(kMmioQueueReady, 1);
  }
  void driver_ok() {
    wr(kMmioStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk);
  }

  Logger logger_;
  Calls calls_;
  GuestMemory memory_;
  common::EventLoop loop_;
  MmioTransport transport_;
};

constexpr uint64_t kVersion1 = 1ULL << kFeatureVersion1;

TEST_F(MmioTransportTest, IdentifiesAsModernVirtioMmio) {
  EXPECT_EQ(rd(kMmioMagicValue), 0x74726976u);
  EXPECT_EQ(rd(kMmioVersion), 2u);
  EXPECT_EQ(rd(kMmioDeviceId), 4u);
  EXPECT_EQ(rd(kMmioVendorId), 0u);
  EXPECT_EQ(rd(kMmioStatus), 0u);
  EXPECT_EQ(rd(kMmioShmLenLow), 0xffffffffu) << "no shared memory regions";
}

TEST_F(MmioTransportTest, OffersDeviceFeaturesPlusVersion1) {
  wr(kMmioDeviceFeaturesSel, 0);
  EXPECT_EQ(rd(kMmioDeviceFeatures), (1u << 3) | (1u << kFeatureEventIdx));
  wr(kMmioDeviceFeaturesSel, 1);
  EXPECT_EQ(rd(kMmioDeviceFeatures), 1u);
  wr(kMmioDeviceFeaturesSel, 2);
  EXPECT_EQ(rd(kMmioDeviceFeatures), 0u);
}

TEST_F(MmioTransportTest, QueueLimitsFollowTheDevice) {
  wr(kMmioQueueSel, 0);
  EXPECT_EQ(rd(kMmioQueueNumMax), 256u);
  wr(kMmioQueueSel, 1);
  EXPECT_EQ(rd(kMmioQueueNumMax), 64u);
  wr(kMmioQueueSel, 2);
  EXPECT_EQ(rd(kMmioQueueNumMax), 0u) << "no such queue";
  EXPECT_EQ(transport_.queue_events().size(), 2u);
}

TEST_F(MmioTransportTest, DriverOkActivatesWithQueuesAndAckedFeatures) {
  negotiate(kVersion1 | (1ULL << 3) | (1ULL << 40));  // bit 40 was never offered
  EXPECT_EQ(rd(kMmioStatus), 0xbu);
  setup_queue(0, 128, 0x1000, 0x2000, 0x3000);
  setup_queue(1, 64, 0x10000, 0x11000, 0x12000);
  driver_ok();
  EXPECT_EQ(rd(kMmioStatus), 0xfu);
  EXPECT_EQ(calls_.activations, 0) << "activation happens on the device thread";
  run_loop();
  ASSERT_EQ(calls_.activations, 1);
  EXPECT_EQ(calls_.acked, kVersion1 | (1ULL << 3)) << "unoffered bits are not acked";
  ASSERT_EQ(calls_.queues.size(), 2u);
  EXPECT_TRUE(calls_.queues[0].ready);
  EXPECT_EQ(calls_.queues[0].size, 128);
  EXPECT_EQ(calls_.queues[0].desc_table, GuestAddress(0x1000));
  EXPECT_EQ(calls_.queues[0].avail_ring, GuestAddress(0x2000));
  EXPECT_EQ(calls_.queues[0].used_ring, GuestAddress(0x3000));
  EXPECT_EQ(calls_.queues[1].max_size, 64);
  EXPECT_EQ(calls_.queues[1].used_ring, GuestAddress(0x12000));
}

TEST_F(MmioTransportTest, FeaturesOkIsRefusedWithoutVersion1) {
  negotiate(1ULL << 3);
  EXPECT_EQ(rd(kMmioStatus) & kStatusFeaturesOk, 0u);
}

TEST_F(MmioTransportTest, OutOfOrderStatusIsIgnored) {
  wr(kMmioStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk);
  EXPECT_EQ(rd(kMmioStatus), 0u);
  wr(kMmioStatus, kStatusAcknowledge);
  wr(kMmioStatus, kStatusAcknowledge | kStatusDriver | kStatusDriverOk);
  EXPECT_EQ(rd(kMmioStatus), kStatusAcknowledge);
  wr(kMmioStatus, kStatusAcknowledge | kStatusFailed);
  EXPECT_EQ(rd(kMmioStatus), kStatusAcknowledge | kStatusFailed);
}

TEST_F(MmioTransportTest, QueueRegistersAreIgnoredOutsideQueueSetup) {
  setup_queue(0, 16, 0x1000, 0x2000, 0x3000);  // before FEATURES_OK
  wr(kMmioQueueSel, 0);
  EXPECT_EQ(rd(kMmioQueueReady), 0u);
  EXPECT_EQ(rd(kMmioQueueNum), 0u);
  negotiate(kVersion1);
  setup_queue(0, 16, 0x1000, 0x2000, 0x3000);
  driver_ok();
  wr(kMmioQueueSel, 0);
  wr(kMmioQueueNum, 8);  // after DRIVER_OK
  EXPECT_EQ(rd(kMmioQueueNum), 16u);
}

TEST_F(MmioTransportTest, NotificationsReachTheDeviceOnTheLoop) {
  negotiate(kVersion1);
  setup_queue(0, 16, 0x1000, 0x2000, 0x3000);
  setup_queue(1, 16, 0x4000, 0x5000, 0x6000);
  driver_ok();
  run_loop();
  // What KVM does for a QueueNotify write with datamatch 1.
  transport_.queue_events()[1]->signal();
  run_loop();
  ASSERT_EQ(calls_.processed, std::vector<uint16_t>{1});
  // Without an ioeventfd the write itself lands on the transport.
  wr(kMmioQueueNotify, 0);
  wr(kMmioQueueNotify, 7);  // no such queue: ignored
  run_loop();
  EXPECT_EQ(calls_.processed, (std::vector<uint16_t>{1, 0}));
}

TEST_F(MmioTransportTest, KicksBeforeActivationAreReplayed) {
  negotiate(kVersion1);
  setup_queue(0, 16, 0x1000, 0x2000, 0x3000);
  driver_ok();
  // The kick is dispatched before the posted activation.
  transport_.queue_events()[0]->signal();
  run_loop();
  EXPECT_EQ(calls_.activations, 1);
  EXPECT_EQ(calls_.processed, std::vector<uint16_t>{0});
}

TEST_F(MmioTransportTest, InterruptStatusAndAck) {
  negotiate(kVersion1);
  setup_queue(0, 16, 0x1000, 0x2000, 0x3000);
  driver_ok();
  run_loop();
  transport_.interrupt_event().consume();
  wr(kMmioQueueNotify, 0);
  run_loop();
  EXPECT_EQ(rd(kMmioInterruptStatus), kInterruptUsedRing);
  EXPECT_EQ(transport_.interrupt_event().consume(), 1u) << "the irqfd was signalled";
  transport_.signal_config_change();
  EXPECT_EQ(rd(kMmioInterruptStatus), kInterruptUsedRing | kInterruptConfigChange);
  EXPECT_EQ(rd(kMmioConfigGeneration), 1u);
  wr(kMmioInterruptAck, kInterruptUsedRing);
  EXPECT_EQ(rd(kMmioInterruptStatus), kInterruptConfigChange);
  wr(kMmioInterruptAck, kInterruptConfigChange);
  EXPECT_EQ(rd(kMmioInterruptStatus), 0u);
}

TEST_F(MmioTransportTest, ConfigSpaceAt0x100AnyWidth) {
  uint8_t byte = 0;
  transport_.read(kMmioConfig + 2, std::span<uint8_t>(&byte, 1));
  EXPECT_EQ(byte, 3);
  uint16_t half = 0;
  transport_.read(kMmioConfig + 4, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&half), 2));
  EXPECT_EQ(half, 0x0605);
  uint8_t value = 0x99;
  transport_.write(kMmioConfig + 1, std::span<const uint8_t>(&value, 1));
  EXPECT_EQ(calls_.config[1], 0x99);
  uint64_t past = 0xffff;
  transport_.read(kMmioConfig + 16, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&past), 8));
  EXPECT_EQ(past, 0u);
}

TEST_F(MmioTransportTest, NarrowRegisterAccessIsIgnored) {
  uint8_t byte = 0xee;
  transport_.read(kMmioMagicValue, std::span<uint8_t>(&byte, 1));
  EXPECT_EQ(byte, 0);
  uint16_t status = kStatusAcknowledge;
  transport_.write(kMmioStatus, std::span<const uint8_t>(reinterpret_cast<uint8_t*>(&status), 2));
  EXPECT_EQ(rd(kMmioStatus), 0u);
}

TEST_F(MmioTransportTest, StatusZeroResetsDeviceAndRegisters) {
  negotiate(kVersion1);
  setup_queue(0, 16, 0x1000, 0x2000, 0x3000);
  driver_ok();
  run_loop();
  transport_.signal_config_change();
  wr(kMmioStatus, 0);
  EXPECT_EQ(rd(kMmioStatus), 0u);
  EXPECT_EQ(rd(kMmioInterruptStatus), 0u);
  wr(kMmioQueueSel, 0);
  EXPECT_EQ(rd(kMmioQueueReady), 0u);
  EXPECT_EQ(rd(kMmioQueueNumMax), 256u);
  run_loop();
  EXPECT_EQ(calls_.resets, 1);
  // And the device can be brought up again.
  negotiate(kVersion1);
  setup_queue(0, 32, 0x1000, 0x2000, 0x3000);
  driver_ok();
  run_loop();
  EXPECT_EQ(calls_.activations, 2);
  EXPECT_EQ(calls_.queues[0].size, 32);
}

TEST_F(MmioTransportTest, ResetBeforeActivationRanCancelsIt) {
  negotiate(kVersion1);
  setup_queue(0, 16, 0x1000, 0x2000, 0x3000);
  driver_ok();
  wr(kMmioStatus, 0);
  run_loop();
  EXPECT_EQ(calls_.activations, 0);
  EXPECT_EQ(calls_.resets, 0);
}

TEST_F(MmioTransportTest, InvalidQueueSizeSetsNeedsReset) {
  negotiate(kVersion1);
  setup_queue(0, 100, 0x1000, 0x2000, 0x3000);  // not a power of two
  driver_ok();
  run_loop();
  EXPECT_EQ(calls_.activations, 0);
  EXPECT_TRUE(rd(kMmioStatus) & kStatusNeedsReset);
  EXPECT_TRUE(rd(kMmioInterruptStatus) & kInterruptConfigChange);
}

TEST_F(MmioTransportTest, FailedActivationSetsNeedsReset) {
  calls_.fail_activation = true;
  negotiate(kVersion1);
  setup_queue(0, 16, 0x1000, 0x2000, 0x3000);
  driver_ok();
  run_loop();
  EXPECT_TRUE(rd(kMmioStatus) & kStatusNeedsReset);
}

TEST_F(MmioTransportTest, DeviceReportedBrokenShowsNeedsReset) {
  EXPECT_FALSE(rd(kMmioStatus) & kStatusNeedsReset);
  calls_.needs_reset = true;
  EXPECT_TRUE(rd(kMmioStatus) & kStatusNeedsReset);
}

}  // namespace
}  // namespace ember::vmm::virtio
