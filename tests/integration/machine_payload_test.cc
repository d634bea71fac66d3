// Payload guests on the real ember machine over /dev/kvm, through the library
// API: boot protocol state, serial, i8042 reset, boot timer, virtio-mmio,
// SMP bring-up, triple fault, PVH, stop/pause/resume, clear build errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <string>
#include <regex>
#include <thread>

#include "tests/harness/require.h"
#include "tests/integration/payload_runner.h"
#include "vmm/common/error.h"
#include "vmm/devices/virtio/virtio_device.h"
#include "vmm/microvm.h"

namespace ember::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

// The value printed after `key=` on the console (up to a space or line end).
std::string field(const std::string& text, const std::string& key) {
  size_t pos = text.find(key + "=");
  if (pos == std::string::npos) return "";
  pos += key.size() + 1;
  size_t end = text.find_first_of(" \n", pos);
  return text.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
}

uint64_t hex_field(const std::string& text, const std::string& key) {
  std::string v = field(text, key);
  return v.empty() ? ~0ULL : std::stoull(v, nullptr, 16);
}

bool wait_for_serial(PayloadVm& vm, const std::string& text, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (vm.serial().find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(2ms);
  }
  return false;
}

void expect_clean_reset(const PayloadRun& run) {
  EXPECT_FALSE(run.timed_out) << run.serial;
  EXPECT_EQ(run.exit.exit_code, 0) << run.exit.reason << "\n" << run.serial << "\n" << run.log;
  EXPECT_EQ(run.exit.reason, "guest reset through i8042");
  EXPECT_THAT(run.serial, HasSubstr("EMBER-PAYLOAD: PASS"));
}

TEST(PayloadBoot, GuestEntersLongModeWithLinuxBootProtocolRegisters) {
  EMBER_REQUIRE_KVM();
  PayloadVm vm("boot_info");
  PayloadRun run = vm.run();
  expect_clean_reset(run);
  const std::string& s = run.serial;
  EXPECT_EQ(field(s, "rsi"), "0x7000") << s;
  EXPECT_EQ(field(s, "rsp"), "0x8ff0");
  EXPECT_EQ(field(s, "rbp"), "0x8ff0");
  EXPECT_EQ(field(s, "rflags"), "0x2");
  uint64_t cr0 = hex_field(s, "cr0"), cr4 = hex_field(s, "cr4"), efer = hex_field(s, "efer");
  EXPECT_EQ(cr0 & 0x80000001, 0x80000001u) << "CR0.PE and CR0.PG";
  EXPECT_EQ(hex_field(s, "cr3"), 0x9000u);
  EXPECT_EQ(cr4 & 0x20, 0x20u) << "CR4.PAE";
  EXPECT_EQ(efer & 0x500, 0x500u) << "EFER.LME and EFER.LMA";
  EXPECT_EQ(field(s, "cs"), "0x8");
  EXPECT_EQ(field(s, "ds"), "0x10");
  EXPECT_EQ(field(s, "ss"), "0x10");
}

TEST(PayloadBoot, ZeroPageCarriesCommandLineAndE820Map) {
  EMBER_REQUIRE_KVM();
  PayloadVm vm("boot_info");
  vm.resources().boot_source->boot_args = "console=ttyS0 ember.test=zero-page";
  PayloadRun run = vm.run();
  expect_clean_reset(run);
  const std::string& s = run.serial;
  EXPECT_EQ(field(s, "boot_flag"), "0xaa55") << s;
  EXPECT_EQ(field(s, "header"), "0x53726448");
  EXPECT_EQ(field(s, "type_of_loader"), "0xff");
  EXPECT_EQ(field(s, "kernel_alignment"), "0x1000000");
  EXPECT_EQ(field(s, "cmd_line_ptr"), "0x20000");
  EXPECT_THAT(s, HasSubstr("cmdline=[console=ttyS0 ember.test=zero-page]\n"));
  EXPECT_EQ(field(s, "cmdline_size"), std::to_string(std::strlen("console=ttyS0 ember.test=zero-page") + 1));
  EXPECT_EQ(field(s, "ramdisk_image"), "0x0");
  // Reference §2.3: RAM below the MPTable, the reserved system area, the ECAM
  // window, then RAM from 1 MiB to the end of the 128 MiB.
  EXPECT_THAT(s, HasSubstr("e820 entries=4\n"
                           "e820 addr=0x0 size=0x9fc00 type=1\n"
                           "e820 addr=0x9fc00 size=0x40400 type=2\n"
                           "e820 addr=0xeec00000 size=0x10000000 type=2\n"
                           "e820 addr=0x100000 size=0x7f00000 type=1\n"));
  EXPECT_THAT(s, HasSubstr("mptable signature=PCMP checksum=ok cpus=1 ioapic=0xfec00000 lapic=0xfee00000"));
  EXPECT_THAT(s, HasSubstr("cpuid apic_id=0 hypervisor=1"));
}

TEST(PayloadBoot, MemoryAbove3GiBContinuesAt4GiB) {
  EMBER_REQUIRE_KVM();
  PayloadVm vm("boot_info");
  vm.resources().machine.mem_size_mib = 4096;
  PayloadRun run = vm.run();
  expect_clean_reset(run);
  EXPECT_THAT(run.serial, HasSubstr("e820 entries=5\n"));
  EXPECT_THAT(run.serial, HasSubstr("e820 addr=0x100000 size=0xbff00000 type=1\n"));
  EXPECT_THAT(run.serial, HasSubstr("e820 addr=0x100000000 size=0x40000000 type=1\n"));
}

TEST(PayloadBoot, DefaultBootArgsAreFirecrackers) {
  EMBER_REQUIRE_KVM();
  PayloadVm vm("boot_info");
  PayloadRun run = vm.run();
  expect_clean_reset(run);
  EXPECT_THAT(run.serial, HasSubstr(std::string("cmdline=[") + vmm::kDefaultBootArgs + "]"));
}

TEST(PayloadBoot, SerialOutputReachesTheConsoleAndI8042ResetExitsZero) {
  EMBER_REQUIRE_KVM();
  PayloadVm vm("hello");
  PayloadRun run = vm.run();
  expect_clean_reset(run);
  EXPECT_THAT(run.serial, HasSubstr("hello from an ember payload\n"));
  EXPECT_THAT(run.log, HasSubstr("event_start: build microvm for boot"));
  EXPECT_THAT(run.log, HasSubstr("event_end: build microvm for boot"));
  EXPECT_GE(vm.metrics().counter("i8042", "reset_count").load(), 1u);
  EXPECT_GE(vm.metrics().counter("uart", "write_count").load(), std::strlen("hello from an ember payload\n"));
}

TEST(PayloadBoot, VmmStartApiRunsAPayloadToCompletion) {
  EMBER_REQUIRE_KVM();
  TempDir dir("ember-vmm-start");
  vmm::VmResources r;
  r.boot_source = vmm::BootSourceConfig{payload_path("hello").string(), std::nullopt, std::nullopt};
  r.serial_out_path = (dir / "serial").string();
  vmm::Logger logger;
  vmm::LoggerConfig lc;
  lc.log_path = (dir / "log").string();
  logger.configure(lc);
  vmm::Metrics metrics;
  auto vm = vmm::Vmm::start(r, logger, metrics);
  std::atomic<int> callbacks{0};
  vm->on_exit([&](const vmm::VmExit& e) {
    EXPECT_EQ(e.exit_code, 0);
    ++callbacks;
  });
  vmm::VmExit exit = vm->wait();
  EXPECT_EQ(exit.exit_code, 0) << exit.reason;
  EXPECT_EQ(vm->state(), vmm::VmState::kExited);
  ASSERT_TRUE(vm->try_wait());
  EXPECT_EQ(vm->try_wait()->reason, "guest reset through i8042");
  EXPECT_EQ(callbacks.load(), 1);
  EXPECT_EQ(vm->resources().boot_source->kernel_image_path, payload_path("hello").string());
}

TEST(PayloadBootTimer, GuestWriteOf123LogsBootTime) {
  EMBER_REQUIRE_KVM();
  PayloadVm vm("boot_timer");
  vm.resources().boot_timer = true;
  PayloadRun run = vm.run();
  expect_clean_reset(run);
  std::regex line(R"(\[payload-test:fc_vcpu 0\] Guest-boot-time = +\d+ us \d+ ms, +\d+ CPU us \d+ CPU ms)");
  EXPECT_TRUE(std::regex_search(run.log, line)) << run.log;
}

TEST(PayloadBootTimer, WithoutTheFlagNothingIsLogged) {
  EMBER_REQUIRE_KVM();
  PayloadVm vm("boot_timer");
  PayloadRun run = vm.run();
  expect_clean_reset(run);
  EXPECT_THAT(run.log, ::testing::Not(HasSubstr("Guest-boot-time")));
}

// A device defined for this test: one queue; echoes each device-readable
// buffer into the chain's device-writable buffer ("echo: <data>").
struct EchoStats {
  std::atomic<int> activations{0};
  std::atomic<int> requests{0};
  std::atomic<uint64_t> acked_features{0};
};

class EchoDevice : public vmm::virtio::VirtioDevice {
 public:
  static constexpr uint32_t kDeviceId = 126;
  explicit EchoDevice(std::shared_ptr<EchoStats> stats) : stats_(std::move(stats)) {}

  vmm::virtio::DeviceType device_type() const override { return static_cast<vmm::virtio::DeviceType>(kDeviceId); }
  uint64_t available_features() const override { return 1ULL << 5; }
  std::vector<uint16_t> queue_max_sizes() const override { return {16}; }
  void read_config(uint64_t offset, std::span<uint8_t> data) const override {
    static const char kConfig[8] = {'E', 'M', 'B', 'E', 'R', 'C', 'F', 'G'};
    for (size_t i = 0; i < data.size(); ++i) data[i] = offset + i < 8 ? kConfig[offset + i] : 0;
  }
  void write_config(uint64_t, std::span<const uint8_t>) override {}
  void activate(vmm::virtio::ActivationContext ctx) override {
    memory_ = &ctx.memory;
    queue_ = ctx.queues.at(0);
    interrupt_ = &ctx.interrupt;
    stats_->acked_features = ctx.acked_features;
    activated_ = true;
    ++stats_->activations;
  }
  bool activated() const override { return activated_; }
  void process_queue(uint16_t) override {
    const auto& mem = *memory_;
    uint16_t avail_idx = mem.load_acquire_u16(queue_.avail_ring + 2);
    while (queue_.next_avail != avail_idx) {
      uint16_t head = mem.read_obj<uint16_t>(queue_.avail_ring + 4 + 2 * (queue_.next_avail % queue_.size));
      std::string data;
      uint32_t written = 0;
      for (uint16_t idx = head, n = 0; n < queue_.size; ++n) {
        vmm::GuestAddress d = queue_.desc_table + 16 * idx;
        uint64_t addr = mem.read_obj<uint64_t>(d);
        uint32_t len = mem.read_obj<uint32_t>(d + 8);
        uint16_t flags = mem.read_obj<uint16_t>(d + 12);
        if (flags & 2) {
          std::string reply = "echo: " + data;
          reply.resize(std::min<size_t>(reply.size() + 1, len));
          mem.write(vmm::GuestAddress(addr),
                    std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(reply.data()), reply.size()));
          written += static_cast<uint32_t>(reply.size());
        } else {
          std::string chunk(len, '\0');
          mem.read(vmm::GuestAddress(addr), std::span<uint8_t>(reinterpret_cast<uint8_t*>(chunk.data()), len));
          data += chunk;
        }
        if (!(flags & 1)) break;
        idx = mem.read_obj<uint16_t>(d + 14);
      }
      vmm::GuestAddress elem = queue_.used_ring + 4 + 8 * (queue_.next_used % queue_.size);
      mem.write_obj<uint32_t>(elem, head);
      mem.write_obj<uint32_t>(elem + 4, written);
      ++queue_.next_avail;
      ++queue_.next_used;
      mem.store_release_u16(queue_.used_ring + 2, queue_.next_used);
      ++stats_->requests;
    }
    interrupt_->signal_used_queue(0);
  }
  vmm::virtio::QueueState queue_state(uint16_t) const override { return queue_; }
  void reset() override { activated_ = false; }

 private:
  std::shared_ptr<EchoStats> stats_;
  const vmm::GuestMemory* memory_ = nullptr;
  vmm::virtio::QueueState queue_;
  vmm::virtio::Interrupt* interrupt_ = nullptr;
  bool activated_ = false;
};

TEST(PayloadVirtioMmio, GuestFindsAnnouncedDeviceAndCompletesAQueueRoundTrip) {
  EMBER_REQUIRE_KVM();
  PayloadVm vm("virtio_probe");
  auto stats = std::make_shared<EchoStats>();
  vm.extra_devices().push_back({"echo", std::make_unique<EchoDevice>(stats)});
  PayloadRun run = vm.run();
  expect_clean_reset(run);
  const std::string& s = run.serial;
  EXPECT_THAT(s, HasSubstr("virtio device=0 base=0xc0001000 gsi=5 magic=0x74726976 version=2 device_id=126 "
                           "vendor=0x0 config0=0x4746435245424d45"));
  EXPECT_THAT(s, HasSubstr("virtio devices=1"));
  EXPECT_THAT(s, HasSubstr("features low=0x20 high=0x1")) << "device bits plus VIRTIO_F_VERSION_1";
  EXPECT_THAT(s, HasSubstr("queue0 max=16"));
  EXPECT_THAT(s, HasSubstr("used id=0 len=26 interrupt_status=0x1 after_ack=0x0"));
  EXPECT_THAT(s, HasSubstr("response=[echo: ping from the guest]"));
  EXPECT_THAT(s, HasSubstr("config=[EMBERCFG] generation=0"));
  EXPECT_THAT(s, HasSubstr("status after reset=0x0"));
  EXPECT_EQ(stats->activations.load(), 1);
  EXPECT_EQ(stats->requests.load(), 1);
  EXPECT_EQ(stats->acked_features.load(), 1ULL << 32) << "the driver acked VERSION_1 only";
}

TEST(PayloadVirtioMmio, ConfiguredDevicesAppearInFirecrackersOrder) {
  EMBER_REQUIRE_KVM();
  PayloadVm vm("virtio_probe");
  TempDir dir("ember-devices");
  std::ofstream(dir / "data.img") << std::string(1 << 20, '\0');
  std::ofstream(dir / "root.img") << std::string(2 << 20, '\0');
  vmm::DriveConfig data;
  data.drive_id = "data";
  data.path_on_host = (dir / "data.img").string();
  vmm::DriveConfig root;
  root.drive_id = "rootfs";
  root.is_root_device = true;
  root.path_on_host = (dir / "root.img").string();
  vm.resources().drives = {data, root};
  vm.resources().vsock = vmm::VsockConfig{3, (dir / "vsock.sock").string()};
  vm.resources().entropy = vmm::EntropyConfig{};
  vm.resources().boot_source->boot_args = "console=ttyS0";
  PayloadRun run = vm.run();
  expect_clean_reset(run);
  const std::string& s = run.serial;
  EXPECT_THAT(s, HasSubstr("cmdline=[console=ttyS0 root=/dev/vda rw virtio_mmio.device=4K@0xc0001000:5 "
                           "virtio_mmio.device=4K@0xc0002000:6 virtio_mmio.device=4K@0xc0003000:7 "
                           "virtio_mmio.device=4K@0xc0004000:8]"));
  // Block (root first: 2 MiB = 0x1000 sectors), vsock, entropy: device IDs 2, 2, 19, 4.
  EXPECT_THAT(s, HasSubstr("virtio device=0 base=0xc0001000 gsi=5 magic=0x74726976 version=2 device_id=2 "
                           "vendor=0x0 config0=0x1000\n"));
  EXPECT_THAT(s, HasSubstr("virtio device=1 base=0xc0002000 gsi=6 magic=0x74726976 version=2 device_id=2 "
                           "vendor=0x0 config0=0x800\n"));
  EXPECT_THAT(s, HasSubstr("virtio device=2 base=0xc0003000 gsi=7 magic=0x74726976 version=2 device_id=19 "));
  EXPECT_THAT(s, HasSubstr("virtio device=3 base=0xc0004000 gsi=8 magic=0x74726976 version=2 device_id=4 "));
  EXPECT_THAT(s, HasSubstr("virtio devices=4"));
}

TEST(PayloadInterrupts, SerialVirtioAndKeyboardInterruptsReachTheGuest) {
  EMBER_REQUIRE_KVM();
  PayloadVm vm("interrupts");
  auto stats = std::make_shared<EchoStats>();
  vm.extra_devices().push_back({"echo", std::make_unique<EchoDevice>(stats)});
  vm.start();
  ASSERT_TRUE(wait_for_serial(vm, "waiting for ctrl-alt-del", 20s)) << vm.serial() << vm.log();
  vm.vm().send_ctrl_alt_del();
  PayloadRun run = vm.wait();
  expect_clean_reset(run);
  EXPECT_THAT(run.serial, ::testing::ContainsRegex("serial interrupts=[1-9]"));
  EXPECT_THAT(run.serial, ::testing::ContainsRegex("virtio interrupts=[1-9][0-9]* used=1 response=\\[echo: irq\\]"));
  EXPECT_THAT(run.serial, ::testing::ContainsRegex("keyboard interrupts=[1-9][0-9]* scancodes=14 11 e0 71"));
}

TEST(PayloadSmp, GuestBringsUpSecondVcpuWithInitSipi) {
  EMBER_REQUIRE_KVM();
  PayloadVm vm("smp");
  vm.resources().machine.vcpu_count = 2;
  PayloadRun run = vm.run();
  expect_clean_reset(run);
  EXPECT_THAT(run.serial, HasSubstr("BSP 0 sees 2 cpus"));
  EXPECT_THAT(run.serial, HasSubstr("AP 1 alive"));
  EXPECT_THAT(run.serial, HasSubstr("all 1 APs alive"));
}

TEST(PayloadSmp, FourVcpusAllComeUp) {
  EMBER_REQUIRE_KVM();
  PayloadVm vm("smp");
  vm.resources().machine.vcpu_count = 4;
  PayloadRun run = vm.run();
  expect_clean_reset(run);
  for (int ap = 1; ap < 4; ++ap) EXPECT_THAT(run.serial, HasSubstr("AP " + std::to_string(ap) + " alive"));
  EXPECT_THAT(run.serial, HasSubstr("all 3 APs alive"));
}

TEST(PayloadFaults, TripleFaultEndsTheVmWithAnErrorPromptly) {
  EMBER_REQUIRE_KVM();
  PayloadVm vm("triple_fault");
  PayloadRun run = vm.run(10s);
  EXPECT_FALSE(run.timed_out) << "the VMM hung after a triple fault";
  EXPECT_EQ(run.exit.exit_code, 1);
  EXPECT_THAT(run.exit.reason, HasSubstr("vcpu 0: KVM_EXIT_SHUTDOWN (triple fault)"));
  EXPECT_THAT(run.serial, HasSubstr("about to triple fault"));
  EXPECT_THAT(run.serial, ::testing::Not(HasSubstr("still running")));
  EXPECT_THAT(run.log, HasSubstr("KVM_EXIT_SHUTDOWN"));
  EXPECT_LT(run.elapsed, 5s);
}

TEST(PayloadPvh, ElfWithXenNoteBootsThroughPvh) {
  EMBER_REQUIRE_KVM();
  PayloadVm vm("pvh_info");
  vm.resources().boot_source->boot_args = "pvh=yes";
  PayloadRun run = vm.run();
  expect_clean_reset(run);
  const std::string& s = run.serial;
  EXPECT_EQ(field(s, "entered"), "1") << s;
  EXPECT_EQ(field(s, "rbx"), "0x6000");
  EXPECT_EQ(hex_field(s, "cr0") & 0x80000001, 0x1u) << "protected mode, paging off";
  EXPECT_EQ(hex_field(s, "cr4"), 0u);
  EXPECT_EQ(field(s, "cs"), "0x8");
  EXPECT_EQ(field(s, "ds"), "0x10");
  EXPECT_THAT(s, HasSubstr("start_info magic=0x336ec578 version=1 memmap=0x7000 entries=4"));
  EXPECT_THAT(s, HasSubstr("cmdline=[pvh=yes]"));
  EXPECT_THAT(s, HasSubstr("memmap addr=0x100000 size=0x7f00000 type=1"));
  EXPECT_THAT(run.log, HasSubstr("Kernel loaded using PVH boot protocol"));
}

TEST(PayloadLifecycle, StopEndsARunningGuest) {
  EMBER_REQUIRE_KVM();
  PayloadVm vm("spin");
  vm.start();
  ASSERT_TRUE(wait_for_serial(vm, "spinning", 10s)) << vm.log();
  EXPECT_EQ(vm.vm().state(), vmm::VmState::kRunning);
  EXPECT_FALSE(vm.vm().try_wait());
  vm.vm().stop(0);
  PayloadRun run = vm.wait(10s);
  EXPECT_FALSE(run.timed_out);
  EXPECT_EQ(run.exit.exit_code, 0);
  EXPECT_EQ(run.exit.reason, "stop requested");
  EXPECT_EQ(vm.vm().state(), vmm::VmState::kExited);
}

TEST(PayloadLifecycle, StopCarriesTheRequestedExitCode) {
  EMBER_REQUIRE_KVM();
  PayloadVm vm("spin");
  vm.start();
  ASSERT_TRUE(wait_for_serial(vm, "spinning", 10s));
  vm.vm().stop(3);
  EXPECT_EQ(vm.wait(10s).exit.exit_code, 3);
}

TEST(PayloadLifecycle, PauseParksEveryVcpuAndResumeContinues) {
  EMBER_REQUIRE_KVM();
  PayloadVm vm("spin");
  vm.resources().machine.vcpu_count = 2;  // vCPU 1 sits in wait-for-SIPI
  vm.start();
  ASSERT_TRUE(wait_for_serial(vm, "spinning", 10s));
  vm.vm().pause();
  EXPECT_EQ(vm.vm().state(), vmm::VmState::kPaused);
  // While paused the guest makes no exits at all: the vCPU counters freeze.
  auto& io_out = vm.metrics().counter("vcpu", "exit_io_out");
  uint64_t before = io_out.load();
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(io_out.load(), before);
  vm.vm().resume();
  EXPECT_EQ(vm.vm().state(), vmm::VmState::kRunning);
  vm.vm().stop(0);
  PayloadRun run = vm.wait(10s);
  EXPECT_FALSE(run.timed_out);
  EXPECT_EQ(run.exit.reason, "stop requested");
}

TEST(PayloadLifecycle, GuestMemoryIsDemandPagedOneMappingPerRegion) {
  EMBER_REQUIRE_KVM();
  PayloadVm vm("spin");
  vm.resources().machine.mem_size_mib = 256;
  vm.start();
  ASSERT_TRUE(wait_for_serial(vm, "spinning", 10s));
  auto& micro = dynamic_cast<vmm::MicroVm&>(vm.vm());
  const auto& regions = micro.machine().memory->regions();
  ASSERT_EQ(regions.size(), 1u);
  EXPECT_EQ(regions[0].size(), 256ULL << 20);
  // /proc/self/smaps: the guest RAM mapping has exactly the region's size and
  // only the pages the payload touched are resident.
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  uint64_t start = reinterpret_cast<uint64_t>(regions[0].mapping.data());
  bool in_guest = false;
  uint64_t rss_kb = ~0ULL;
  while (std::getline(smaps, line)) {
    unsigned long lo, hi;
    if (std::sscanf(line.c_str(), "%lx-%lx", &lo, &hi) == 2) {
      in_guest = lo == start;
      if (in_guest) {
        EXPECT_EQ(hi - lo, 256ULL << 20) << line;
      }
      continue;
    }
    if (in_guest && line.rfind("Rss:", 0) == 0) rss_kb = std::stoull(line.substr(4));
  }
  EXPECT_LT(rss_kb, 4096u) << "guest RAM must not be prefaulted";
  vm.vm().stop(0);
  vm.wait(10s);
}

TEST(PayloadLifecycle, DriveUpdatesRunOnTheDeviceThreadAndReportErrors) {
  EMBER_REQUIRE_KVM();
  TempDir dir("ember-update");
  std::ofstream(dir / "a.img") << std::string(1 << 20, '\0');
  std::ofstream(dir / "b.img") << std::string(2 << 20, '\0');
  PayloadVm vm("spin");
  vmm::DriveConfig d;
  d.drive_id = "scratch";
  d.path_on_host = (dir / "a.img").string();
  vm.resources().drives = {d};
  vm.start();
  ASSERT_TRUE(wait_for_serial(vm, "spinning", 10s));
  vm.vm().update_drive({"scratch", (dir / "b.img").string(), std::nullopt});
  EXPECT_EQ(vm.vm().resources().drives.at(0).path_on_host, (dir / "b.img").string());
  try {
    vm.vm().update_drive({"nope", (dir / "b.img").string(), std::nullopt});
    FAIL() << "updated a drive that does not exist";
  } catch (const common::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("drive \"nope\" does not exist"));
  }
  try {
    vm.vm().update_drive({"scratch", (dir / "missing.img").string(), std::nullopt});
    FAIL() << "switched to a missing file";
  } catch (const common::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("missing.img"));
  }
  EXPECT_EQ(vm.vm().resources().drives.at(0).path_on_host, (dir / "b.img").string()) << "a failed update changes nothing";
  vm.vm().stop(0);
  PayloadRun run = vm.wait(10s);
  EXPECT_EQ(run.exit.reason, "stop requested");
  // After the VM ended the update still runs (on the caller) and reports.
  EXPECT_NO_THROW(vm.vm().update_drive({"scratch", (dir / "a.img").string(), std::nullopt}));
}

TEST(PayloadBuildErrors, MissingKernelIsAClearError) {
  EMBER_REQUIRE_KVM();
  PayloadVm vm("hello");
  vm.resources().boot_source->kernel_image_path = "/nonexistent/vmlinux";
  try {
    vm.start();
    FAIL() << "started without a kernel";
  } catch (const common::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("/nonexistent/vmlinux"));
    EXPECT_THAT(e.what(), HasSubstr("No such file or directory"));
  }
}

TEST(PayloadBuildErrors, NoBootSourceIsFirecrackersError) {
  PayloadVm vm("hello");
  vm.resources().boot_source.reset();
  try {
    vm.start();
    FAIL() << "started without a boot source";
  } catch (const common::Error& e) {
    EXPECT_STREQ(e.what(), "Cannot start microvm without kernel configuration.");
  }
}

TEST(PayloadBuildErrors, DriveFailsNamingTheDrive) {
  PayloadVm vm("hello");
  vmm::DriveConfig drive;
  drive.drive_id = "rootfs";
  drive.is_root_device = true;
  drive.path_on_host = "/nonexistent/rootfs.ext4";
  vm.resources().drives.push_back(drive);
  try {
    vm.start();
    FAIL() << "started with a drive that cannot exist";
  } catch (const common::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("drive \"rootfs\""));
  }
}

}  // namespace
}  // namespace ember::testing
