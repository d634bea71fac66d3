#include "vmm/vmm_config/json.h"

#include <cstdio>

#include "vmm/common/text.h"

namespace ember::vmm::json {
namespace {

// Field tables mirror Firecracker's Rust structs (src/vmm/src/vmm_config/*.rs):
// declaration order matters, it is the order of serde's "expected one of"
// lists and of "missing field" checks.
constexpr FieldSpec req(const char* name) { return {name, true}; }
constexpr FieldSpec opt(const char* name) { return {name, false}; }

constexpr const char* kActionTypes[] = {"FlushMetrics", "InstanceStart", "SendCtrlAltDel"};
constexpr const char* kCacheTypes[] = {"Unsafe", "Writeback"};
constexpr const char* kIoEngines[] = {"Async", "Sync"};
constexpr const char* kHugePages[] = {"None", "Transparent", "2M"};
constexpr const char* kStaticCpuTemplates[] = {"C3", "T2", "T2S", "None", "T2CL", "T2A"};
constexpr const char* kVmStates[] = {"Paused", "Resumed"};

constexpr CpuTemplate kCpuTemplateOf[] = {CpuTemplate::kC3,   CpuTemplate::kT2,
                                          CpuTemplate::kT2S,  CpuTemplate::kNone,
                                          CpuTemplate::kT2CL, CpuTemplate::kT2A};

template <class F>
auto parse_document(std::string_view text, F&& read) {
  JsonReader reader(text);
  auto value = read(reader);
  reader.end();
  return value;
}

uint64_t read_u64(JsonReader& r) { return r.read_uint("u64", UINT64_MAX); }
uint32_t read_u32(JsonReader& r) { return static_cast<uint32_t>(r.read_uint("u32", UINT32_MAX)); }

std::optional<std::string> read_opt_string(JsonReader& r, const char* expecting = "a string") {
  if (r.read_null()) return std::nullopt;
  return r.read_string(expecting);
}

std::optional<bool> read_opt_bool(JsonReader& r) {
  if (r.read_null()) return std::nullopt;
  return r.read_bool();
}

TokenBucketConfig read_token_bucket(JsonReader& r) {
  static constexpr FieldSpec kFields[] = {req("size"), opt("one_time_burst"), req("refill_time")};
  TokenBucketConfig bucket;
  // TokenBucketConfig is the one rate-limiter struct without deny_unknown_fields upstream.
  r.read_struct("struct TokenBucketConfig", kFields, false, [&](size_t field) {
    switch (field) {
      case 0:
        bucket.size = read_u64(r);
        break;
      case 1:
        bucket.one_time_burst = r.read_null() ? std::nullopt : std::optional<uint64_t>(read_u64(r));
        break;
      case 2:
        bucket.refill_time_ms = read_u64(r);
        break;
    }
  });
  return bucket;
}

std::optional<RateLimiterConfig> read_opt_rate_limiter(JsonReader& r) {
  if (r.read_null()) return std::nullopt;
  static constexpr FieldSpec kFields[] = {opt("bandwidth"), opt("ops")};
  RateLimiterConfig limiter;
  r.read_struct("struct RateLimiterConfig", kFields, true, [&](size_t field) {
    std::optional<TokenBucketConfig> bucket;
    if (!r.read_null()) bucket = read_token_bucket(r);
    (field == 0 ? limiter.bandwidth : limiter.ops) = bucket;
  });
  return limiter;
}

// MacAddr::from_str upstream: six ':'-separated fields of exactly two
// characters, each parsed as a base-16 u8 (which tolerates a leading '+').
std::optional<std::string> normalize_mac(const std::string& text) {
  unsigned bytes[6];
  size_t field = 0, start = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    if (i < text.size() && text[i] != ':') continue;
    if (field == 6) return std::nullopt;
    std::string part = text.substr(start, i - start);
    if (part.size() != 2) return std::nullopt;
    std::string digits = part[0] == '+' ? part.substr(1) : part;
    unsigned value = 0;
    for (char c : digits) {
      int h = (c >= '0' && c <= '9')   ? c - '0'
              : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                       : -1;
      if (h < 0) return std::nullopt;
      value = value * 16 + static_cast<unsigned>(h);
    }
    bytes[field++] = value;
    start = i + 1;
  }
  if (field != 6) return std::nullopt;
  char out[18];
  std::snprintf(out, sizeof out, "%02x:%02x:%02x:%02x:%02x:%02x", bytes[0], bytes[1], bytes[2],
                bytes[3], bytes[4], bytes[5]);
  return std::string(out);
}

// Rust's u32::from_str_radix / str::parse::<u32>, with ParseIntError's texts.
enum class IntError { kNone, kEmpty, kInvalidDigit, kPosOverflow };
IntError parse_rust_uint(std::string_view s, unsigned radix, uint64_t max, uint64_t* out) {
  if (s.empty()) return IntError::kEmpty;
  if (s[0] == '+') {
    s.remove_prefix(1);
    if (s.empty()) return IntError::kInvalidDigit;
  }
  uint64_t value = 0;
  bool overflow = false;
  for (char c : s) {
    int d = (c >= '0' && c <= '9')   ? c - '0'
            : (c >= 'a' && c <= 'z') ? c - 'a' + 10
            : (c >= 'A' && c <= 'Z') ? c - 'A' + 10
                                     : 99;
    if (d >= static_cast<int>(radix)) return IntError::kInvalidDigit;
    if (!overflow && (value > (max - static_cast<uint64_t>(d)) / radix)) overflow = true;
    if (!overflow) value = value * radix + static_cast<uint64_t>(d);
  }
  if (overflow) return IntError::kPosOverflow;
  *out = value;
  return IntError::kNone;
}

const char* int_error_debug(IntError e) {
  switch (e) {
    case IntError::kEmpty:
      return "ParseIntError { kind: Empty }";
    case IntError::kInvalidDigit:
      return "ParseIntError { kind: InvalidDigit }";
    case IntError::kPosOverflow:
      return "ParseIntError { kind: PosOverflow }";
    case IntError::kNone:
      break;
  }
  return "";
}

const char* int_error_display(IntError e) {
  switch (e) {
    case IntError::kEmpty:
      return "cannot parse integer from empty string";
    case IntError::kInvalidDigit:
      return "invalid digit found in string";
    case IntError::kPosOverflow:
      return "number too large to fit in target type";
    case IntError::kNone:
      break;
  }
  return "";
}

// CPU template numbers are strings with a 0x or 0b prefix
// (templates_serde.rs: deserialize_from_str).
uint64_t read_prefixed_number(JsonReader& r, uint64_t max) {
  std::string text = r.read_string();
  unsigned radix;
  std::string_view digits(text);
  if (digits.substr(0, 2) == "0b") {
    radix = 2;
  } else if (digits.substr(0, 2) == "0x") {
    radix = 16;
  } else {
    JsonReader::fail("No supported number system prefix found in value [" + text +
                     "]. Make sure to prefix the number with '0x' for hexadecimal numbers or '0b' "
                     "for binary numbers.");
  }
  digits.remove_prefix(2);
  uint64_t value = 0;
  IntError e = parse_rust_uint(digits, radix, max, &value);
  if (e != IntError::kNone)
    JsonReader::fail("Failed to parse string [" + text + "] as a number for CPU template - " +
                     int_error_debug(e));
  return value;
}

// RegisterValueFilter: "0b" + one character per bit, most significant first:
// '0'/'1' set the bit, 'x' leaves it alone, '_' is a separator.
void read_bitmap(JsonReader& r, unsigned bits, uint64_t* mask, uint64_t* value) {
  std::string text = r.read_string();
  std::string_view s(text);
  if (s.substr(0, 2) == "0b") s.remove_prefix(2);
  *mask = 0;
  *value = 0;
  unsigned i = 0;
  for (auto it = s.rbegin(); it != s.rend(); ++it) {
    if (i == bits)
      JsonReader::fail("Failed to parse string [" + text + "] as a bitmap - string is too long");
    unsigned char c = static_cast<unsigned char>(*it);
    if (c == '_') continue;
    if (c == '0' || c == '1') {
      *mask |= uint64_t{1} << i;
      if (c == '1') *value |= uint64_t{1} << i;
    } else if (c != 'x') {
      JsonReader::fail("Failed to parse string [" + text +
                       "] as a bitmap - unknown character: " + std::to_string(c));
    }
    ++i;
  }
}

CustomCpuTemplate read_cpu_template(JsonReader& r) {
  static constexpr FieldSpec kTemplate[] = {opt("kvm_capabilities"), opt("cpuid_modifiers"),
                                            opt("msr_modifiers")};
  static constexpr FieldSpec kLeaf[] = {req("leaf"), req("subleaf"), req("flags"),
                                        req("modifiers")};
  static constexpr FieldSpec kRegister[] = {req("register"), req("bitmap")};
  static constexpr FieldSpec kMsr[] = {req("addr"), req("bitmap")};
  CustomCpuTemplate tmpl;
  r.read_struct("struct CustomCpuTemplate", kTemplate, true, [&](size_t field) {
    switch (field) {
      case 0:
        tmpl.kvm_capabilities.clear();
        r.read_seq([&] {
          std::string text = r.read_string();
          bool remove = !text.empty() && text[0] == '!';
          uint64_t cap = 0;
          IntError e =
              parse_rust_uint(std::string_view(text).substr(remove ? 1 : 0), 10, UINT32_MAX, &cap);
          if (e != IntError::kNone)
            JsonReader::fail(
                "Failed to parse string [" + text +
                "] as a kvm capability - can not convert to numeric: " + int_error_display(e));
          tmpl.kvm_capabilities.push_back(remove ? -static_cast<int32_t>(cap)
                                                 : static_cast<int32_t>(cap));
        });
        break;
      case 1:
        tmpl.cpuid_modifiers.clear();
        r.read_seq([&] {
          CpuidLeafModifier leaf;
          r.read_struct("struct CpuidLeafModifier", kLeaf, false, [&](size_t f) {
            switch (f) {
              case 0:
                leaf.leaf = static_cast<uint32_t>(read_prefixed_number(r, UINT32_MAX));
                break;
              case 1:
                leaf.subleaf = static_cast<uint32_t>(read_prefixed_number(r, UINT32_MAX));
                break;
              case 2:
                leaf.flags = read_u32(r);
                break;
              case 3:
                leaf.modifiers.clear();
                r.read_seq([&] {
                  CpuidRegisterModifier mod{};
                  r.read_struct("struct CpuidRegisterModifier", kRegister, false, [&](size_t g) {
                    if (g == 0) {
                      std::string reg = r.read_string();
                      if (reg == "eax")
                        mod.reg = CpuidRegisterModifier::Register::kEax;
                      else if (reg == "ebx")
                        mod.reg = CpuidRegisterModifier::Register::kEbx;
                      else if (reg == "ecx")
                        mod.reg = CpuidRegisterModifier::Register::kEcx;
                      else if (reg == "edx")
                        mod.reg = CpuidRegisterModifier::Register::kEdx;
                      else
                        JsonReader::fail(
                            "Invalid CPUID register. Must be one of [eax, ebx, ecx, edx]");
                    } else {
                      uint64_t mask, value;
                      read_bitmap(r, 32, &mask, &value);
                      mod.mask = static_cast<uint32_t>(mask);
                      mod.value = static_cast<uint32_t>(value);
                    }
                  });
                  leaf.modifiers.push_back(mod);
                });
                break;
            }
          });
          tmpl.cpuid_modifiers.push_back(std::move(leaf));
        });
        break;
      case 2:
        tmpl.msr_modifiers.clear();
        r.read_seq([&] {
          MsrModifier msr;
          r.read_struct("struct RegisterModifier", kMsr, false, [&](size_t f) {
            if (f == 0) {
              msr.addr = static_cast<uint32_t>(read_prefixed_number(r, UINT32_MAX));
            } else {
              read_bitmap(r, 64, &msr.mask, &msr.value);
            }
          });
          tmpl.msr_modifiers.push_back(msr);
        });
        break;
    }
  });
  return tmpl;
}

// MachineConfig (PUT) and MachineConfigUpdate (PATCH) share their fields;
// only which are required differs.
MachineConfigUpdate read_machine_config(JsonReader& r, bool put) {
  static constexpr FieldSpec kPutFields[] = {
      req("vcpu_count"),   req("mem_size_mib"),      opt("smt"),
      opt("cpu_template"), opt("track_dirty_pages"), opt("huge_pages")};
  static constexpr FieldSpec kPatchFields[] = {
      opt("vcpu_count"),   opt("mem_size_mib"),      opt("smt"),
      opt("cpu_template"), opt("track_dirty_pages"), opt("huge_pages")};
  MachineConfigUpdate update;
  r.read_struct(put ? "struct MachineConfig" : "struct MachineConfigUpdate",
                put ? kPutFields : kPatchFields, true, [&](size_t field) {
                  // In a PATCH every field is an Option (null = left out); in
                  // a PUT only cpu_template is, the others are plain values.
                  switch (field) {
                    case 0:
                      if (!put && r.read_null()) break;
                      update.vcpu_count = static_cast<uint32_t>(r.read_uint("u8", UINT8_MAX));
                      break;
                    case 1:
                      if (!put && r.read_null()) break;
                      update.mem_size_mib = r.read_uint("usize", UINT64_MAX);
                      break;
                    case 2:
                      if (!put && r.read_null()) break;
                      update.smt = r.read_bool();
                      break;
                    case 3:
                      // Option<StaticCpuTemplate> in both forms.
                      if (r.read_null()) break;
                      update.cpu_template =
                          kCpuTemplateOf[r.read_unit_variant(kStaticCpuTemplates)];
                      break;
                    case 4:
                      if (!put && r.read_null()) break;
                      update.track_dirty_pages = r.read_bool();
                      break;
                    case 5:
                      if (!put && r.read_null()) break;
                      update.huge_pages = static_cast<HugePages>(r.read_unit_variant(kHugePages));
                      break;
                  }
                });
  if (put) {
    // MachineConfigUpdate::from(MachineConfig): the defaulted fields are set.
    if (!update.smt) update.smt = false;
    if (!update.track_dirty_pages) update.track_dirty_pages = false;
    if (!update.huge_pages) update.huge_pages = HugePages::kNone;
  }
  return update;
}

BootSourceConfig read_boot_source(JsonReader& r) {
  static constexpr FieldSpec kFields[] = {req("kernel_image_path"), opt("initrd_path"),
                                          opt("boot_args")};
  BootSourceConfig config;
  r.read_struct("struct BootSourceConfig", kFields, true, [&](size_t field) {
    switch (field) {
      case 0:
        config.kernel_image_path = r.read_string();
        break;
      case 1:
        config.initrd_path = read_opt_string(r);
        break;
      case 2:
        config.boot_args = read_opt_string(r);
        break;
    }
  });
  return config;
}

DriveConfig read_drive(JsonReader& r) {
  static constexpr FieldSpec kFields[] = {
      req("drive_id"),     opt("partuuid"),     req("is_root_device"),
      opt("cache_type"),   opt("is_read_only"), opt("path_on_host"),
      opt("rate_limiter"), opt("io_engine"),    opt("socket")};
  DriveConfig drive;
  r.read_struct("struct BlockDeviceConfig", kFields, true, [&](size_t field) {
    switch (field) {
      case 0:
        drive.drive_id = r.read_string();
        break;
      case 1:
        drive.partuuid = read_opt_string(r);
        break;
      case 2:
        drive.is_root_device = r.read_bool();
        break;
      case 3:
        drive.cache_type = static_cast<CacheType>(r.read_unit_variant(kCacheTypes));
        break;
      case 4:
        drive.is_read_only = read_opt_bool(r).value_or(false);
        break;
      case 5:
        drive.path_on_host = read_opt_string(r);
        break;
      case 6:
        drive.rate_limiter = read_opt_rate_limiter(r);
        break;
      case 7:
        if (!r.read_null())
          drive.io_engine =
              r.read_unit_variant(kIoEngines) == 0 ? IoEngine::kAsync : IoEngine::kSync;
        break;
      case 8:
        drive.socket = read_opt_string(r);
        break;
    }
  });
  return drive;
}

NetworkInterfaceConfig read_network_interface(JsonReader& r) {
  static constexpr FieldSpec kFields[] = {req("iface_id"),        req("host_dev_name"),
                                          opt("guest_mac"),       opt("mtu"),
                                          opt("rx_rate_limiter"), opt("tx_rate_limiter")};
  NetworkInterfaceConfig net;
  r.read_struct("struct NetworkInterfaceConfig", kFields, true, [&](size_t field) {
    switch (field) {
      case 0:
        net.iface_id = r.read_string();
        break;
      case 1:
        net.host_dev_name = r.read_string();
        break;
      case 2:
        if (!r.read_null()) {
          auto mac = normalize_mac(r.read_string());
          if (!mac) JsonReader::fail("The provided MAC address is invalid.");
          net.guest_mac = *mac;
        }
        break;
      case 3:
        if (!r.read_null()) net.mtu = static_cast<uint16_t>(r.read_uint("u16", UINT16_MAX));
        break;
      case 4:
        net.rx_rate_limiter = read_opt_rate_limiter(r);
        break;
      case 5:
        net.tx_rate_limiter = read_opt_rate_limiter(r);
        break;
    }
  });
  return net;
}

VsockRequest read_vsock(JsonReader& r) {
  static constexpr FieldSpec kFields[] = {opt("vsock_id"), req("guest_cid"), req("uds_path")};
  VsockRequest request;
  r.read_struct("struct VsockDeviceConfig", kFields, true, [&](size_t field) {
    switch (field) {
      case 0:
        request.deprecated_vsock_id = read_opt_string(r).has_value();
        break;
      case 1:
        request.config.guest_cid = read_u32(r);
        break;
      case 2:
        request.config.uds_path = r.read_string();
        break;
    }
  });
  return request;
}

EntropyConfig read_entropy(JsonReader& r) {
  static constexpr FieldSpec kFields[] = {opt("rate_limiter")};
  EntropyConfig config;
  r.read_struct("struct EntropyDeviceConfig", kFields, true,
                [&](size_t) { config.rate_limiter = read_opt_rate_limiter(r); });
  return config;
}

LoggerUpdate read_logger(JsonReader& r) {
  static constexpr FieldSpec kFields[] = {opt("log_path"), opt("level"), opt("show_level"),
                                          opt("show_log_origin"), opt("module")};
  LoggerUpdate update;
  r.read_struct("struct LoggerConfig", kFields, true, [&](size_t field) {
    switch (field) {
      case 0:
        update.log_path = read_opt_string(r, "path string");
        break;
      case 1:
        if (!r.read_null()) {
          // Upstream's LevelFilter: any case, "warn" or "warning".
          std::string level = r.read_string();
          for (auto& c : level) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          if (level == "off")
            update.level = LogLevel::kOff;
          else if (level == "trace")
            update.level = LogLevel::kTrace;
          else if (level == "debug")
            update.level = LogLevel::kDebug;
          else if (level == "info")
            update.level = LogLevel::kInfo;
          else if (level == "warn" || level == "warning")
            update.level = LogLevel::kWarning;
          else if (level == "error")
            update.level = LogLevel::kError;
          else
            JsonReader::fail("Invalid LevelFilter");
        }
        break;
      case 2:
        update.show_level = read_opt_bool(r);
        break;
      case 3:
        update.show_log_origin = read_opt_bool(r);
        break;
      case 4:
        update.module = read_opt_string(r);
        break;
    }
  });
  return update;
}

MetricsConfig read_metrics(JsonReader& r) {
  static constexpr FieldSpec kFields[] = {req("metrics_path"), opt("emit_id"), opt("properties")};
  MetricsConfig config;
  // MetricsConfig has no deny_unknown_fields upstream.
  r.read_struct("struct MetricsConfig", kFields, false, [&](size_t field) {
    switch (field) {
      case 0:
        config.metrics_path = r.read_string("path string");
        break;
      case 1:
        config.emit_id = r.read_bool();
        break;
      case 2:
        config.properties.clear();
        if (!r.read_null())
          r.read_map([&](std::string key) { config.properties[std::move(key)] = r.read_string(); });
        break;
    }
  });
  return config;
}

// ---------------------------------------------------------------- writing

class Writer {
 public:
  Writer& raw(std::string_view s) {
    out_ += s;
    return *this;
  }
  Writer& key(std::string_view k) {
    comma();
    out_ += common::json_quote(k);
    out_ += ':';
    pending_value_ = true;
    return *this;
  }
  Writer& str(std::string_view s) { return value(common::json_quote(s)); }
  Writer& num(uint64_t n) { return value(std::to_string(n)); }
  Writer& boolean(bool b) { return value(b ? "true" : "false"); }
  Writer& null() { return value("null"); }
  Writer& opt_str(const std::optional<std::string>& s) { return s ? str(*s) : null(); }
  Writer& begin_object() {
    comma();
    out_ += '{';
    first_ = true;
    return *this;
  }
  Writer& end_object() {
    out_ += '}';
    first_ = false;
    return *this;
  }
  Writer& begin_array() {
    comma();
    out_ += '[';
    first_ = true;
    return *this;
  }
  Writer& end_array() {
    out_ += ']';
    first_ = false;
    return *this;
  }
  std::string take() { return std::move(out_); }

 private:
  Writer& value(std::string_view v) {
    comma();
    out_ += v;
    return *this;
  }
  void comma() {
    if (pending_value_) {
      pending_value_ = false;
      return;
    }
    if (!first_) out_ += ',';
    first_ = false;
  }

  std::string out_;
  bool first_ = true;
  bool pending_value_ = false;
};

void write_token_bucket(Writer& w, const std::optional<TokenBucketConfig>& bucket) {
  if (!bucket) {
    w.null();
    return;
  }
  w.begin_object();
  w.key("size").num(bucket->size);
  w.key("one_time_burst");
  if (bucket->one_time_burst) {
    w.num(*bucket->one_time_burst);
  } else {
    w.null();
  }
  w.key("refill_time").num(bucket->refill_time_ms);
  w.end_object();
}

void write_rate_limiter(Writer& w, const std::optional<RateLimiterConfig>& limiter) {
  auto effective = effective_rate_limiter(limiter);
  if (!effective) {
    w.null();
    return;
  }
  w.begin_object();
  w.key("bandwidth");
  write_token_bucket(w, effective->bandwidth);
  w.key("ops");
  write_token_bucket(w, effective->ops);
  w.end_object();
}

const char* huge_pages_name(HugePages h) { return kHugePages[static_cast<size_t>(h)]; }

const char* cpu_template_name(CpuTemplate t) {
  for (size_t i = 0; i < std::size(kCpuTemplateOf); ++i)
    if (kCpuTemplateOf[i] == t) return kStaticCpuTemplates[i];
  return "None";
}

void write_machine_config(Writer& w, const MachineConfig& m) {
  w.begin_object();
  w.key("vcpu_count").num(m.vcpu_count);
  w.key("mem_size_mib").num(m.mem_size_mib);
  w.key("smt").boolean(m.smt);
  // Upstream skips cpu_template when there is none (or a custom one).
  if (m.cpu_template != CpuTemplate::kNone)
    w.key("cpu_template").str(cpu_template_name(m.cpu_template));
  w.key("track_dirty_pages").boolean(m.track_dirty_pages);
  w.key("huge_pages").str(huge_pages_name(m.huge_pages));
  w.end_object();
}

}  // namespace

std::optional<RateLimiterConfig> effective_rate_limiter(
    const std::optional<RateLimiterConfig>& limiter) {
  if (!limiter) return std::nullopt;
  auto effective_bucket =
      [](const std::optional<TokenBucketConfig>& b) -> std::optional<TokenBucketConfig> {
    if (!b || b->size == 0 || b->refill_time_ms == 0) return std::nullopt;
    TokenBucketConfig out = *b;
    if (out.one_time_burst && *out.one_time_burst == 0) out.one_time_burst.reset();
    return out;
  };
  RateLimiterConfig out{effective_bucket(limiter->bandwidth), effective_bucket(limiter->ops)};
  if (!out.bandwidth && !out.ops) return std::nullopt;
  return out;
}


ActionType parse_action(std::string_view body) {
  return parse_document(body, [](JsonReader& r) {
    static constexpr FieldSpec kFields[] = {req("action_type")};
    ActionType action = ActionType::kInstanceStart;
    r.read_struct("struct ActionBody", kFields, true, [&](size_t) {
      action = static_cast<ActionType>(r.read_unit_variant(kActionTypes));
    });
    return action;
  });
}

BootSourceConfig parse_boot_source(std::string_view body) {
  return parse_document(body, read_boot_source);
}

MachineConfigUpdate parse_machine_config_put(std::string_view body) {
  return parse_document(body, [](JsonReader& r) { return read_machine_config(r, true); });
}

MachineConfigUpdate parse_machine_config_patch(std::string_view body) {
  return parse_document(body, [](JsonReader& r) { return read_machine_config(r, false); });
}

CustomCpuTemplate parse_cpu_config(std::string_view body) {
  return parse_document(body, read_cpu_template);
}

DriveConfig parse_drive(std::string_view body) { return parse_document(body, read_drive); }

DriveUpdate parse_drive_update(std::string_view body) {
  return parse_document(body, [](JsonReader& r) {
    static constexpr FieldSpec kFields[] = {req("drive_id"), opt("path_on_host"),
                                            opt("rate_limiter")};
    DriveUpdate update;
    r.read_struct("struct BlockDeviceUpdateConfig", kFields, true, [&](size_t field) {
      switch (field) {
        case 0:
          update.drive_id = r.read_string();
          break;
        case 1:
          update.path_on_host = read_opt_string(r);
          break;
        case 2:
          update.rate_limiter = read_opt_rate_limiter(r);
          break;
      }
    });
    return update;
  });
}

NetworkInterfaceConfig parse_network_interface(std::string_view body) {
  return parse_document(body, read_network_interface);
}

NetworkInterfaceUpdate parse_network_interface_update(std::string_view body) {
  return parse_document(body, [](JsonReader& r) {
    static constexpr FieldSpec kFields[] = {req("iface_id"), opt("rx_rate_limiter"),
                                            opt("tx_rate_limiter")};
    NetworkInterfaceUpdate update;
    r.read_struct("struct NetworkInterfaceUpdateConfig", kFields, true, [&](size_t field) {
      switch (field) {
        case 0:
          update.iface_id = r.read_string();
          break;
        case 1:
          update.rx_rate_limiter = read_opt_rate_limiter(r);
          break;
        case 2:
          update.tx_rate_limiter = read_opt_rate_limiter(r);
          break;
      }
    });
    return update;
  });
}

VsockRequest parse_vsock(std::string_view body) { return parse_document(body, read_vsock); }

EntropyConfig parse_entropy(std::string_view body) { return parse_document(body, read_entropy); }

LoggerUpdate parse_logger(std::string_view body) { return parse_document(body, read_logger); }

MetricsConfig parse_metrics(std::string_view body) { return parse_document(body, read_metrics); }

VmStateRequest parse_vm_state(std::string_view body) {
  return parse_document(body, [](JsonReader& r) {
    static constexpr FieldSpec kFields[] = {req("state")};
    VmStateRequest state = VmStateRequest::kPaused;
    r.read_struct("struct Vm", kFields, true, [&](size_t) {
      state = static_cast<VmStateRequest>(r.read_unit_variant(kVmStates));
    });
    return state;
  });
}

VmmConfigFile parse_config_file(std::string_view text) {
  return parse_document(text, [](JsonReader& r) {
    // VmmConfig upstream (resources.rs): no deny_unknown_fields; `drives`
    // has no serde default, so it is required like `boot-source`.
    static constexpr FieldSpec kFields[] = {
        opt("balloon"),       req("drives"),      req("boot-source"),
        opt("cpu-config"),    opt("logger"),      opt("machine-config"),
        opt("metrics"),       opt("mmds-config"), opt("network-interfaces"),
        opt("vsock"),         opt("entropy"),     opt("pmem"),
        opt("memory-hotplug")};
    VmmConfigFile file;
    r.read_struct("struct VmmConfig", kFields, false, [&](size_t field) {
      switch (field) {
        case 0:
          if (!r.read_null()) {
            r.ignore_value();
            file.has_balloon = true;
          }
          break;
        case 1:
          r.read_seq([&] { file.drives.push_back(read_drive(r)); });
          break;
        case 2:
          file.boot_source = read_boot_source(r);
          break;
        case 3:
          if (r.read_null()) break;
          if (r.peek_is_string()) {
            file.cpu_config = r.read_string("path string");
          } else {
            // Upstream's untagged enum CustomCpuTemplateOrPath: a template
            // that does not parse is reported without detail.
            std::string_view raw = r.skip_raw_value();
            try {
              file.cpu_config = parse_cpu_config(raw);
            } catch (const JsonError&) {
              JsonReader::fail(
                  "data did not match any variant of untagged enum CustomCpuTemplateOrPath");
            }
          }
          break;
        case 4:
          if (!r.read_null()) file.logger = read_logger(r);
          break;
        case 5:
          if (!r.read_null()) file.machine_config = read_machine_config(r, true);
          break;
        case 6:
          if (!r.read_null()) file.metrics = read_metrics(r);
          break;
        case 7:
          if (!r.read_null()) {
            r.ignore_value();
            file.has_mmds_config = true;
          }
          break;
        case 8:
          r.read_seq([&] { file.network_interfaces.push_back(read_network_interface(r)); });
          break;
        case 9:
          if (!r.read_null()) file.vsock = read_vsock(r).config;
          break;
        case 10:
          if (!r.read_null()) file.entropy = read_entropy(r);
          break;
        case 11:
          r.read_seq([&] {
            r.ignore_value();
            file.has_pmem = true;
          });
          break;
        case 12:
          if (!r.read_null()) {
            r.ignore_value();
            file.has_memory_hotplug = true;
          }
          break;
      }
    });
    return file;
  });
}

std::string to_json(const MachineConfig& config) {
  Writer w;
  write_machine_config(w, config);
  return w.take();
}

std::string to_json(const InstanceInfo& info) {
  Writer w;
  w.begin_object();
  w.key("id").str(info.id);
  w.key("state").str(info.state);
  w.key("vmm_version").str(info.vmm_version);
  w.key("app_name").str(info.app_name);
  w.end_object();
  return w.take();
}

std::string version_json(std::string_view version) {
  Writer w;
  w.begin_object();
  w.key("firecracker_version").str(version);
  w.end_object();
  return w.take();
}

std::string fault_message_json(std::string_view message) {
  Writer w;
  w.begin_object();
  w.key("fault_message").str(message);
  w.end_object();
  return w.take();
}

std::string full_config_json(const VmResources& res) {
  // Field order of upstream's VmmConfig, which is what serde writes.
  Writer w;
  w.begin_object();
  w.key("balloon").null();
  w.key("drives").begin_array();
  for (const auto& d : res.drives) {
    w.begin_object();
    w.key("drive_id").str(d.drive_id);
    w.key("partuuid").opt_str(d.partuuid);
    w.key("is_root_device").boolean(d.is_root_device);
    w.key("cache_type").str(kCacheTypes[static_cast<size_t>(d.cache_type)]);
    w.key("is_read_only").boolean(d.is_read_only);
    w.key("path_on_host").opt_str(d.path_on_host);
    w.key("rate_limiter");
    write_rate_limiter(w, d.rate_limiter);
    w.key("io_engine").str(d.io_engine == IoEngine::kAsync ? "Async" : "Sync");
    w.key("socket").opt_str(d.socket);
    w.end_object();
  }
  w.end_array();
  w.key("boot-source").begin_object();
  // Unconfigured, upstream reports the default BootSourceConfig.
  w.key("kernel_image_path").str(res.boot_source ? res.boot_source->kernel_image_path : "");
  w.key("initrd_path").opt_str(res.boot_source ? res.boot_source->initrd_path : std::nullopt);
  w.key("boot_args").opt_str(res.boot_source ? res.boot_source->boot_args : std::nullopt);
  w.end_object();
  w.key("cpu-config").null();
  w.key("logger").null();
  w.key("machine-config");
  write_machine_config(w, res.machine);
  w.key("metrics").null();
  w.key("mmds-config").null();
  w.key("network-interfaces").begin_array();
  for (const auto& n : res.network_interfaces) {
    w.begin_object();
    w.key("iface_id").str(n.iface_id);
    w.key("host_dev_name").str(n.host_dev_name);
    w.key("guest_mac").opt_str(n.guest_mac);
    w.key("mtu");
    if (n.mtu) {
      w.num(*n.mtu);
    } else {
      w.null();
    }
    w.key("rx_rate_limiter");
    write_rate_limiter(w, n.rx_rate_limiter);
    w.key("tx_rate_limiter");
    write_rate_limiter(w, n.tx_rate_limiter);
    w.end_object();
  }
  w.end_array();
  w.key("vsock");
  if (res.vsock) {
    w.begin_object();
    w.key("guest_cid").num(res.vsock->guest_cid);
    w.key("uds_path").str(res.vsock->uds_path);
    w.end_object();
  } else {
    w.null();
  }
  w.key("entropy");
  if (res.entropy) {
    w.begin_object();
    w.key("rate_limiter");
    write_rate_limiter(w, res.entropy->rate_limiter);
    w.end_object();
  } else {
    w.null();
  }
  w.key("pmem").begin_array().end_array();
  w.key("memory-hotplug").null();
  w.end_object();
  return w.take();
}

}  // namespace ember::vmm::json
