// Plain configuration objects for a microVM, mirroring Firecracker's API bodies
// (reference/firecracker-compat.md §1.3). The API layer turns JSON into these;
// the builder turns these into a running VM. Nothing here knows about HTTP or
// JSON, and nothing here touches KVM.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ember::vmm {

inline constexpr const char* kDefaultBootArgs =
    "reboot=k panic=1 nomodule 8250.nr_uarts=0 i8042.noaux i8042.nomux i8042.dumbkbd swiotlb=noforce";
inline constexpr size_t kMaxCmdlineLen = 2048;  // including the trailing NUL
inline constexpr uint32_t kMaxVcpus = 32;

// size == 0 or refill_time_ms == 0 disables the bucket.
struct TokenBucketConfig {
  uint64_t size = 0;
  std::optional<uint64_t> one_time_burst;
  uint64_t refill_time_ms = 0;
  bool operator==(const TokenBucketConfig&) const = default;
};

struct RateLimiterConfig {
  std::optional<TokenBucketConfig> bandwidth;
  std::optional<TokenBucketConfig> ops;
  bool operator==(const RateLimiterConfig&) const = default;
};

struct BootSourceConfig {
  std::string kernel_image_path;
  std::optional<std::string> initrd_path;
  std::optional<std::string> boot_args;  // nullopt: kDefaultBootArgs
};

enum class CpuTemplate { kNone, kC3, kT2, kT2S, kT2CL, kT2A };
enum class HugePages { kNone, kTransparent, k2M };

struct MachineConfig {
  uint32_t vcpu_count = 1;
  uint64_t mem_size_mib = 128;
  bool smt = false;
  bool track_dirty_pages = false;
  HugePages huge_pages = HugePages::kNone;
  CpuTemplate cpu_template = CpuTemplate::kNone;  // deprecated static template
};

// A custom CPU template (PUT /cpu-config), x86_64 parts.
struct CpuidRegisterModifier {
  enum class Register { kEax, kEbx, kEcx, kEdx } reg;
  uint32_t mask = 0;   // bits to change
  uint32_t value = 0;  // their new values
};
struct CpuidLeafModifier {
  uint32_t leaf = 0;
  uint32_t subleaf = 0;
  uint32_t flags = 0;  // KVM_CPUID_FLAG_SIGNIFCANT_INDEX etc.
  std::vector<CpuidRegisterModifier> modifiers;
};
struct MsrModifier {
  uint32_t addr = 0;
  uint64_t mask = 0;
  uint64_t value = 0;
};
struct CustomCpuTemplate {
  std::vector<CpuidLeafModifier> cpuid_modifiers;
  std::vector<MsrModifier> msr_modifiers;
  std::vector<int32_t> kvm_capabilities;  // positive: require, negative: remove
};

enum class CacheType { kUnsafe, kWriteback };
enum class IoEngine { kSync, kAsync };

struct DriveConfig {
  std::string drive_id;
  bool is_root_device = false;
  std::optional<std::string> partuuid;
  CacheType cache_type = CacheType::kUnsafe;
  bool is_read_only = false;
  std::optional<std::string> path_on_host;
  std::optional<RateLimiterConfig> rate_limiter;
  IoEngine io_engine = IoEngine::kSync;
  std::optional<std::string> socket;  // vhost-user-blk frontend (not supported by ember-vmm)
};

// PATCH /drives/{id}: omitted fields stay unchanged.
struct DriveUpdate {
  std::string drive_id;
  std::optional<std::string> path_on_host;
  std::optional<RateLimiterConfig> rate_limiter;
};

struct NetworkInterfaceConfig {
  std::string iface_id;
  std::string host_dev_name;
  std::optional<std::string> guest_mac;  // "aa:bb:cc:dd:ee:ff"
  std::optional<uint16_t> mtu;
  std::optional<RateLimiterConfig> rx_rate_limiter;
  std::optional<RateLimiterConfig> tx_rate_limiter;
};

struct NetworkInterfaceUpdate {
  std::string iface_id;
  std::optional<RateLimiterConfig> rx_rate_limiter;
  std::optional<RateLimiterConfig> tx_rate_limiter;
};

struct VsockConfig {
  uint32_t guest_cid = 3;
  std::string uds_path;
};

struct EntropyConfig {
  std::optional<RateLimiterConfig> rate_limiter;
};

enum class LogLevel { kOff, kError, kWarning, kInfo, kDebug, kTrace };

struct LoggerConfig {
  std::optional<std::string> log_path;
  LogLevel level = LogLevel::kInfo;
  bool show_level = false;
  bool show_log_origin = false;
  std::optional<std::string> module;
};

struct MetricsConfig {
  std::string metrics_path;
  bool emit_id = false;
  std::map<std::string, std::string> properties;
};

// Everything needed to build a VM; what GET /vm/config reports.
struct VmResources {
  std::optional<BootSourceConfig> boot_source;
  MachineConfig machine;
  std::optional<CustomCpuTemplate> cpu_config;
  std::vector<DriveConfig> drives;  // the root drive, if any, first
  std::vector<NetworkInterfaceConfig> network_interfaces;
  std::optional<VsockConfig> vsock;
  std::optional<EntropyConfig> entropy;
  bool boot_timer = false;                  // --boot-timer
  std::optional<std::string> serial_out_path;  // nullopt: stdout
};

}  // namespace ember::vmm
