#include "vmm/vmm_config/json.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace ember::vmm::json {
namespace {

template <class F>
std::string error_of(F&& parse) {
  try {
    parse();
  } catch (const JsonError& e) {
    return e.what();
  }
  return "no error";
}

TEST(ConfigJson, MachineConfigPutRequiresVcpuCountAndMemSizeWithUpstreamPositions) {
  // Pinned by upstream test_api.py::test_api_machine_config.
  EXPECT_EQ(error_of([] { parse_machine_config_put(R"({"mem_size_mib": 128})"); }),
            "missing field `vcpu_count` at line 1 column 21");
  EXPECT_EQ(error_of([] { parse_machine_config_put(R"({"vcpu_count": 2})"); }),
            "missing field `mem_size_mib` at line 1 column 17");
}

TEST(ConfigJson, MachineConfigPutSetsDefaultsAndPatchLeavesFieldsOut) {
  auto put = parse_machine_config_put(R"({"vcpu_count": 2, "mem_size_mib": 256})");
  EXPECT_EQ(put.vcpu_count, 2u);
  EXPECT_EQ(put.smt, false);
  EXPECT_EQ(put.huge_pages, HugePages::kNone);
  EXPECT_FALSE(put.cpu_template.has_value());
  auto patch = parse_machine_config_patch(R"({"track_dirty_pages": true, "huge_pages": "2M"})");
  EXPECT_FALSE(patch.vcpu_count.has_value());
  EXPECT_EQ(patch.huge_pages, HugePages::k2M);
  EXPECT_TRUE(parse_machine_config_patch("{}").empty());
  EXPECT_EQ(error_of([] { parse_machine_config_patch(R"({"cpu_template": "foo"})"); }),
            "unknown variant `foo`, expected one of `C3`, `T2`, `T2S`, `None`, `T2CL`, `T2A` at "
            "line 1 column 22");
  EXPECT_EQ(
      error_of([] { parse_machine_config_patch(R"({"vcpus": 1})"); }),
      "unknown field `vcpus`, expected one of `vcpu_count`, `mem_size_mib`, `smt`, `cpu_template`, "
      "`track_dirty_pages`, `huge_pages` at line 1 column 8");
}

TEST(ConfigJson, ActionTypes) {
  EXPECT_EQ(parse_action(R"({"action_type": "InstanceStart"})"), ActionType::kInstanceStart);
  EXPECT_EQ(parse_action(R"({"action_type": "FlushMetrics"})"), ActionType::kFlushMetrics);
  EXPECT_EQ(error_of([] { parse_action(R"({"action_type": "Reboot"})"); }),
            "unknown variant `Reboot`, expected one of `FlushMetrics`, `InstanceStart`, "
            "`SendCtrlAltDel` at line 1 "
            "column 24");
  EXPECT_EQ(error_of([] { parse_action(R"({"action_type": 5})"); }),
            "expected value at line 1 column 17");
}

TEST(ConfigJson, DriveDefaultsAndUnknownField) {
  auto d =
      parse_drive(R"({"drive_id": "rootfs", "path_on_host": "/r.ext4", "is_root_device": true})");
  EXPECT_EQ(d.drive_id, "rootfs");
  EXPECT_TRUE(d.is_root_device);
  EXPECT_FALSE(d.is_read_only);
  EXPECT_EQ(d.io_engine, IoEngine::kSync);
  EXPECT_EQ(d.cache_type, CacheType::kUnsafe);
  std::string e =
      error_of([] { parse_drive(R"({"drive_id": "a", "is_root_device": false, "x": 1})"); });
  EXPECT_NE(e.find("unknown field `x`, expected one of `drive_id`, `partuuid`, `is_root_device`, "
                   "`cache_type`, "
                   "`is_read_only`, `path_on_host`, `rate_limiter`, `io_engine`, `socket`"),
            std::string::npos)
      << e;
  auto u = parse_drive_update(
      R"({"drive_id": "a", "rate_limiter": {"bandwidth": {"size": 0, "refill_time": 0}}})");
  ASSERT_TRUE(u.rate_limiter && u.rate_limiter->bandwidth);
  EXPECT_EQ(u.rate_limiter->bandwidth->size, 0u);
  EXPECT_FALSE(u.rate_limiter->ops.has_value());
}

TEST(ConfigJson, NetworkInterfaceMacIsValidatedAndNormalized) {
  auto n = parse_network_interface(
      R"({"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "AA:bb:0c:dd:ee:FF"})");
  EXPECT_EQ(n.guest_mac, "aa:bb:0c:dd:ee:ff");
  EXPECT_EQ(
      error_of([] {
        parse_network_interface(R"({"iface_id": "a", "host_dev_name": "t", "guest_mac": "zz"})");
      }),
      "The provided MAC address is invalid. at line 1 column 58");
}

TEST(ConfigJson, LoggerLevelIsCaseInsensitive) {
  EXPECT_EQ(parse_logger(R"({"level": "Warning"})").level, LogLevel::kWarning);
  EXPECT_EQ(parse_logger(R"({"level": "DEBUG"})").level, LogLevel::kDebug);
  EXPECT_EQ(error_of([] { parse_logger(R"({"level": "loud"})"); }),
            "Invalid LevelFilter at line 1 column 17");
}

TEST(ConfigJson, MetricsAcceptsUnknownFieldsAndProperties) {
  auto m = parse_metrics(
      R"({"metrics_path": "/m", "whatever": [1], "properties": {"b": "2", "a": "1"}})");
  EXPECT_EQ(m.metrics_path, "/m");
  EXPECT_EQ(m.properties.size(), 2u);
  EXPECT_EQ(error_of([] { parse_metrics(R"({"metrics_path": 3})"); }),
            "invalid type: integer `3`, expected path string at line 1 column 18");
}

TEST(ConfigJson, CpuTemplate) {
  // 32 bit characters: bit 30 must be 0, bit 0 must be 1.
  std::string bitmap = "0bx0" + std::string(29, 'x') + "1";
  auto t = parse_cpu_config(R"({
    "kvm_capabilities": ["171", "!172"],
    "cpuid_modifiers": [{"leaf": "0x1", "subleaf": "0x0", "flags": 0,
                         "modifiers": [{"register": "ecx", "bitmap": ")" +
                            bitmap + R"("}]}],
    "msr_modifiers": [{"addr": "0x10a", "bitmap": "0b1x"}]})");
  ASSERT_EQ(t.kvm_capabilities.size(), 2u);
  EXPECT_EQ(t.kvm_capabilities[1], -172);
  ASSERT_EQ(t.cpuid_modifiers.size(), 1u);
  EXPECT_EQ(t.cpuid_modifiers[0].leaf, 1u);
  EXPECT_EQ(t.cpuid_modifiers[0].modifiers[0].mask, 0x40000001u);
  EXPECT_EQ(t.cpuid_modifiers[0].modifiers[0].value, 0x00000001u);
  EXPECT_EQ(t.msr_modifiers[0].addr, 0x10au);
  EXPECT_EQ(t.msr_modifiers[0].mask, 2u);
  EXPECT_EQ(t.msr_modifiers[0].value, 2u);
  EXPECT_NE(error_of([] {
              parse_cpu_config(R"({"msr_modifiers": [{"addr": "10", "bitmap": "0b1"}]})");
            }).find("No supported number system prefix found in value [10]"),
            std::string::npos);
}

// tests/framework/vm_config.json upstream: GET /vm/config after booting from
// it must return it unchanged (test_config_start_with_api).
constexpr const char* kUpstreamVmConfig = R"({
  "boot-source": {
    "kernel_image_path": "vmlinux.bin",
    "boot_args": "console=ttyS0 reboot=k panic=1",
    "initrd_path": null
  },
  "drives": [
    {
      "drive_id": "rootfs",
      "partuuid": null,
      "is_root_device": true,
      "cache_type": "Unsafe",
      "is_read_only": false,
      "path_on_host": "bionic.rootfs.ext4",
      "io_engine": "Sync",
      "rate_limiter": null,
      "socket": null
    }
  ],
  "machine-config": {
    "vcpu_count": 2,
    "mem_size_mib": 1024,
    "smt": false,
    "track_dirty_pages": false,
    "huge_pages": "None"
  },
  "cpu-config": null,
  "balloon": null,
  "network-interfaces": [],
  "vsock": null,
  "logger": null,
  "metrics": null,
  "mmds-config": null,
  "entropy": null,
  "pmem": [],
  "memory-hotplug": null
})";

TEST(ConfigJson, ConfigFileRoundTripsThroughFullVmConfig) {
  VmmConfigFile file = parse_config_file(kUpstreamVmConfig);
  VmResources res;
  res.boot_source = file.boot_source;
  res.drives = file.drives;
  ASSERT_TRUE(file.machine_config.has_value());
  res.machine.vcpu_count = *file.machine_config->vcpu_count;
  res.machine.mem_size_mib = *file.machine_config->mem_size_mib;
  EXPECT_EQ(nlohmann::json::parse(full_config_json(res)), nlohmann::json::parse(kUpstreamVmConfig));
}

TEST(ConfigJson, ConfigFileNeedsDrivesAndBootSource) {
  EXPECT_EQ(error_of([] { parse_config_file(R"({"boot-source": {"kernel_image_path": "k"}})"); }),
            "missing field `drives` at line 1 column 43");
  auto f =
      parse_config_file(R"({"drives": [], "boot-source": {"kernel_image_path": "k"}, "unknown": 1,
                                 "balloon": {"amount_mib": 1}})");
  EXPECT_TRUE(f.has_balloon);
}

TEST(ConfigJson, FullConfigOfAnUnconfiguredVmHasEveryKey) {
  auto j = nlohmann::json::parse(full_config_json(VmResources{}));
  for (const char* key :
       {"balloon", "drives", "boot-source", "cpu-config", "logger", "machine-config", "metrics",
        "mmds-config", "network-interfaces", "vsock", "entropy", "pmem", "memory-hotplug"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["boot-source"],
            (nlohmann::json{
                {"kernel_image_path", ""}, {"initrd_path", nullptr}, {"boot_args", nullptr}}));
  EXPECT_EQ(j.size(), 13u);
}

TEST(ConfigJson, RateLimitersAreReportedAsEffective) {
  VmResources res;
  NetworkInterfaceConfig n;
  n.iface_id = "1";
  n.host_dev_name = "tap1";
  n.tx_rate_limiter =
      RateLimiterConfig{TokenBucketConfig{1000000, std::nullopt, 100}, std::nullopt};
  n.rx_rate_limiter = RateLimiterConfig{TokenBucketConfig{0, 5, 100}, std::nullopt};
  res.network_interfaces.push_back(n);
  auto j = nlohmann::json::parse(full_config_json(res));
  EXPECT_EQ(j["network-interfaces"][0]["tx_rate_limiter"],
            nlohmann::json::parse(
                R"({"bandwidth": {"size": 1000000, "refill_time": 100, "one_time_burst": null},
                                      "ops": null})"));
  EXPECT_TRUE(j["network-interfaces"][0]["rx_rate_limiter"].is_null());
  EXPECT_TRUE(j["network-interfaces"][0]["mtu"].is_null());
}

TEST(ConfigJson, ResponsesMatchUpstreamShapes) {
  EXPECT_EQ(version_json("1.2.3"), R"({"firecracker_version":"1.2.3"})");
  EXPECT_EQ(fault_message_json("a \"b\"\n"), R"({"fault_message":"a \"b\"\n"})");
  InstanceInfo info{"vm1", "Not started", "0.1.0"};
  EXPECT_EQ(to_json(info),
            R"({"id":"vm1","state":"Not started","vmm_version":"0.1.0","app_name":"Firecracker"})");
  MachineConfig m;
  EXPECT_EQ(
      to_json(m),
      R"({"vcpu_count":1,"mem_size_mib":128,"smt":false,"track_dirty_pages":false,"huge_pages":"None"})");
  m.cpu_template = CpuTemplate::kT2S;
  EXPECT_NE(to_json(m).find(R"("cpu_template":"T2S")"), std::string::npos);
}

}  // namespace
}  // namespace ember::vmm::json
