#include "vmm/api/controller.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "vmm/api/fake_vmm.h"

namespace ember::vmm::api {
namespace {

using testing::FakeVmm;

class ControllerTest : public ::testing::Test {
 protected:
  ControllerTest() {
    dir_ = ::testing::TempDir() + "/controller_test_" + std::to_string(::getpid());
    ::mkdir(dir_.c_str(), 0755);
    kernel_ = dir_ + "/vmlinux";
    std::ofstream(kernel_) << "kernel";
    disk_ = dir_ + "/disk.img";
    std::ofstream(disk_) << std::string(4096, '\0');
    LoggerConfig quiet;
    quiet.level = LogLevel::kOff;
    logger_.configure(quiet);
  }
  ~ControllerTest() override { std::system(("rm -rf " + dir_).c_str()); }

  Controller make(std::string* start_error = nullptr) {
    ControllerOptions o;
    o.instance_id = "vm1";
    o.version = "9.9.9";
    o.start_vmm = [this, start_error](const VmResources& res, Logger&,
                                      Metrics&) -> std::unique_ptr<Vmm> {
      if (start_error && !start_error->empty()) throw common::Error(*start_error);
      auto vmm = std::make_unique<FakeVmm>(res);
      fake_ = vmm.get();
      return vmm;
    };
    return Controller(o, logger_, metrics_);
  }
  static std::string error_of(const VmmResponse& r) {
    auto* e = std::get_if<VmmResponse::Error>(&r.data);
    return e ? e->message : "<ok>";
  }
  DriveConfig drive(const std::string& id, bool root) {
    DriveConfig d;
    d.drive_id = id;
    d.is_root_device = root;
    d.path_on_host = disk_;
    return d;
  }
  void boot(Controller& c) {
    c.handle(action::ConfigureBootSource{BootSourceConfig{kernel_, std::nullopt, std::nullopt}});
    ASSERT_EQ(error_of(c.handle(action::StartMicroVm{})), "<ok>");
  }

  std::string dir_, kernel_, disk_;
  Logger logger_;
  Metrics metrics_;
  FakeVmm* fake_ = nullptr;
};

TEST_F(ControllerTest, RuntimeOperationsAreRefusedBeforeBoot) {
  Controller c = make();
  for (VmmAction a :
       std::initializer_list<VmmAction>{action::Pause{}, action::Resume{}, action::FlushMetrics{},
                                        action::SendCtrlAltDel{}, action::UpdateDrive{}})
    EXPECT_EQ(error_of(c.handle(a)),
              "The requested operation is not supported before starting the microVM.");
}

TEST_F(ControllerTest, ConfigurationIsRefusedAfterBoot) {
  Controller c = make();
  boot(c);
  for (VmmAction a : std::initializer_list<VmmAction>{
           action::ConfigureBootSource{}, action::UpdateMachineConfig{}, action::InsertDrive{},
           action::SetVsock{}, action::SetEntropy{}, action::ConfigureLogger{},
           action::ConfigureMetrics{}, action::StartMicroVm{}, action::PutCpuConfig{},
           action::InsertNetworkInterface{}})
    EXPECT_EQ(error_of(c.handle(a)),
              "The requested operation is not supported after starting the microVM.");
}

TEST_F(ControllerTest, StartWithoutKernelIsUpstreamsError) {
  Controller c = make();
  EXPECT_EQ(error_of(c.handle(action::StartMicroVm{})),
            "Start microvm error: Cannot start microvm without kernel configuration.");
  EXPECT_FALSE(c.started());
}

TEST_F(ControllerTest, MachineRefusalAtStartCarriesItsMessage) {
  std::string refusal = "virtio-net is not available in this ember build";
  Controller c = make(&refusal);
  c.handle(action::ConfigureBootSource{BootSourceConfig{kernel_, std::nullopt, std::nullopt}});
  EXPECT_EQ(error_of(c.handle(action::StartMicroVm{})), "Start microvm error: " + refusal);
  EXPECT_FALSE(c.started());
}

TEST_F(ControllerTest, BootSourceFilesAreCheckedWhenConfigured) {
  Controller c = make();
  EXPECT_EQ(error_of(c.handle(action::ConfigureBootSource{
                BootSourceConfig{"foo.bar", std::nullopt, std::nullopt}})),
            "Boot source error: The kernel file cannot be opened: No such file or directory (os "
            "error 2)");
  EXPECT_EQ(error_of(c.handle(action::ConfigureBootSource{
                BootSourceConfig{kernel_, "/no/initrd", std::nullopt}})),
            "Boot source error: The initrd file cannot be opened due to invalid path or invalid "
            "permissions. No such "
            "file or directory (os error 2)");
  EXPECT_EQ(error_of(c.handle(action::ConfigureBootSource{
                BootSourceConfig{kernel_, std::nullopt, std::string(2048, 'a')}})),
            "Boot source error: The kernel command line is invalid: Inserting string would make "
            "command line too long.");
}

TEST_F(ControllerTest, MachineConfigRulesAndMessages) {
  Controller c = make();
  MachineConfigUpdate u;
  u.vcpu_count = 0;
  EXPECT_EQ(error_of(c.handle(action::UpdateMachineConfig{u})),
            "Machine config error: The number of vCPUs must be greater than 0, less than 32 and "
            "must be 1 or an even "
            "number if SMT is enabled.");
  u.vcpu_count = 3;
  u.smt = true;
  EXPECT_NE(error_of(c.handle(action::UpdateMachineConfig{u})), "<ok>");
  MachineConfigUpdate m;
  m.mem_size_mib = 0;
  EXPECT_EQ(error_of(c.handle(action::UpdateMachineConfig{m})),
            "Machine config error: The memory size (MiB) is either 0, or not a multiple of the "
            "configured page size.");
  MachineConfigUpdate ok;
  ok.vcpu_count = 2;
  ok.mem_size_mib = 256;
  EXPECT_EQ(error_of(c.handle(action::UpdateMachineConfig{ok})), "<ok>");
  auto got = std::get<MachineConfig>(c.handle(action::GetMachineConfig{}).data);
  EXPECT_EQ(got.vcpu_count, 2u);
  EXPECT_EQ(got.mem_size_mib, 256u);
}

TEST_F(ControllerTest, DrivesKeepTheRootFirstAndRefuseASecondRoot) {
  Controller c = make();
  EXPECT_EQ(error_of(c.handle(action::InsertDrive{drive("data", false)})), "<ok>");
  EXPECT_EQ(error_of(c.handle(action::InsertDrive{drive("rootfs", true)})), "<ok>");
  EXPECT_EQ(c.resources().drives.front().drive_id, "rootfs");
  EXPECT_EQ(error_of(c.handle(action::InsertDrive{drive("data", true)})),
            "Drive config error: A root block device already exists!");
  DriveConfig missing = drive("scratch", false);
  missing.path_on_host = dir_ + "/foo.bar";
  EXPECT_EQ(error_of(c.handle(action::InsertDrive{missing})),
            "Drive config error: Unable to create the virtio block device: Virtio backend error: "
            "Error manipulating "
            "the backing file: No such file or directory (os error 2) " +
                dir_ + "/foo.bar");
  DriveConfig neither = drive("x", false);
  neither.path_on_host.reset();
  EXPECT_EQ(error_of(c.handle(action::InsertDrive{neither})),
            "Drive config error: Unable to create the virtio block device: Invalid block config.");
}

TEST_F(ControllerTest, NetworkInterfacesRefuseDuplicateMacs) {
  Controller c = make();
  NetworkInterfaceConfig a{"1",          "tap1",       "06:00:00:00:00:01",
                           std::nullopt, std::nullopt, std::nullopt};
  NetworkInterfaceConfig b{"2",          "tap2",       "06:00:00:00:00:01",
                           std::nullopt, std::nullopt, std::nullopt};
  EXPECT_EQ(error_of(c.handle(action::InsertNetworkInterface{a})), "<ok>");
  EXPECT_EQ(error_of(c.handle(action::InsertNetworkInterface{b})),
            "Network config error: The MAC address is already in use: 06:00:00:00:00:01");
  b.guest_mac = "08:00:00:00:00:01";
  EXPECT_EQ(error_of(c.handle(action::InsertNetworkInterface{b})), "<ok>");
  EXPECT_EQ(c.resources().network_interfaces.size(), 2u);
}

TEST_F(ControllerTest, VsockPathInUseIsRefused) {
  Controller c = make();
  EXPECT_EQ(error_of(c.handle(action::SetVsock{VsockConfig{3, kernel_}})),
            "Vsock config error: Cannot create backend for vsock device: Error binding to the "
            "host-side Unix socket: "
            "Address already in use (os error 98)");
  EXPECT_EQ(error_of(c.handle(action::SetVsock{VsockConfig{3, dir_ + "/v.sock"}})), "<ok>");
}

TEST_F(ControllerTest, MetricsCanBeConfiguredOnce) {
  Controller c = make();
  MetricsConfig m;
  m.metrics_path = dir_ + "/m.json";
  EXPECT_EQ(error_of(c.handle(action::ConfigureMetrics{m})), "<ok>");
  EXPECT_EQ(error_of(c.handle(action::ConfigureMetrics{m})),
            "Metrics error: Cannot initialize the metrics system due to bad user input: "
            "Reinitialization of metrics "
            "not allowed.");
}

TEST_F(ControllerTest, RuntimeCallsReachTheVmm) {
  Controller c = make();
  c.handle(action::InsertDrive{drive("rootfs", true)});
  boot(c);
  EXPECT_EQ(error_of(c.handle(action::Pause{})), "<ok>");
  EXPECT_EQ(std::get<InstanceInfo>(c.handle(action::GetInstanceInfo{}).data).state, "Paused");
  EXPECT_EQ(error_of(c.handle(action::Resume{})), "<ok>");
  DriveUpdate update;
  update.drive_id = "rootfs";
  update.path_on_host = "/new.img";
  EXPECT_EQ(error_of(c.handle(action::UpdateDrive{update})), "<ok>");
  update.drive_id = "nope";
  EXPECT_EQ(error_of(c.handle(action::UpdateDrive{update})),
            "Drive config error: Unable to patch the block device: no drive \"nope\" Please verify "
            "the request "
            "arguments.");
  EXPECT_EQ(error_of(c.handle(action::SendCtrlAltDel{})), "<ok>");
  EXPECT_EQ(fake_->calls, (std::vector<std::string>{"pause", "resume", "update_drive rootfs",
                                                    "update_drive nope", "ctrl-alt-del"}));
  auto full = std::get<VmResources>(c.handle(action::GetFullConfig{}).data);
  EXPECT_EQ(full.drives.front().path_on_host, "/new.img");
  EXPECT_GT(metrics_.counter("latencies_us", "vmm_pause_vm").load() + 1, 0u);
}

TEST_F(ControllerTest, ConfigFileSectionsEmberLacksAreRefused) {
  Controller c = make();
  VmmConfigFile file;
  file.boot_source.kernel_image_path = kernel_;
  file.has_balloon = true;
  try {
    c.apply_config_file(file);
    FAIL();
  } catch (const common::Error& e) {
    EXPECT_STREQ(e.what(), "The balloon device is not supported by ember.");
  }
}

}  // namespace
}  // namespace ember::vmm::api
