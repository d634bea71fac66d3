#include "vmm/vhost_user/device_spec.h"

#include <charconv>
#include <vector>

#include "vmm/common/error.h"
#include "vmm/devices/virtio/block/block_device.h"
#include "vmm/devices/virtio/rng/entropy_device.h"
#include "vmm/devices/virtio/vsock/vsock_device.h"

namespace ember::vmm::vhost_user {
namespace {

std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (;;) {
    size_t end = text.find(sep, start);
    parts.push_back(
        text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

}  // namespace

DeviceSpec parse_device_spec(std::string_view text) {
  std::string where = "device \"" + std::string(text) + "\"";
  std::vector<std::string_view> parts = split(text, ',');
  std::string_view kind = parts[0];
  DeviceSpec spec;
  if (kind == "blk" || kind == "block") {
    spec.type = virtio::DeviceType::kBlock;
  } else if (kind == "vsock") {
    spec.type = virtio::DeviceType::kVsock;
  } else if (kind == "rng" || kind == "entropy") {
    spec.type = virtio::DeviceType::kRng;
  } else {
    throw common::Error(where + ": unknown device type \"" + std::string(kind) +
                        "\" (expected blk, vsock or rng)");
  }

  bool have_cid = false;
  for (size_t i = 1; i < parts.size(); ++i) {
    std::string_view part = parts[i];
    size_t eq = part.find('=');
    std::string key(part.substr(0, eq));
    std::string value =
        eq == std::string_view::npos ? std::string() : std::string(part.substr(eq + 1));
    bool has_value = eq != std::string_view::npos;
    auto need_value = [&] {
      if (!has_value || value.empty())
        throw common::Error(where + ": option \"" + key + "\" needs a value");
    };
    // One of two named values: "<key> must be a or b, not \"x\"" otherwise.
    auto either = [&](const char* a, auto a_value, const char* b, decltype(a_value) b_value) {
      need_value();
      if (value == a) return a_value;
      if (value == b) return b_value;
      throw common::Error(where + ": " + key + " must be " + a + " or " + b + ", not \"" + value +
                          "\"");
    };
    auto bad = [&] {
      throw common::Error(where + ": option \"" + key + "\" does not apply to " +
                          std::string(kind));
    };

    if (spec.type == virtio::DeviceType::kBlock) {
      if (key == "path") {
        need_value();
        spec.drive.path_on_host = value;
      } else if (key == "readonly" || key == "ro") {
        if (has_value && value != "on" && value != "true" && value != "off" && value != "false") {
          throw common::Error(where + ": readonly takes on/off, not \"" + value + "\"");
        }
        spec.drive.is_read_only = !has_value || value == "on" || value == "true";
      } else if (key == "id") {
        need_value();
        spec.id = value;
      } else if (key == "cache") {
        spec.drive.cache_type =
            either("unsafe", CacheType::kUnsafe, "writeback", CacheType::kWriteback);
      } else if (key == "engine") {
        spec.drive.io_engine = either("sync", IoEngine::kSync, "async", IoEngine::kAsync);
      } else {
        bad();
      }
    } else if (spec.type == virtio::DeviceType::kVsock) {
      if (key == "guest-cid" || key == "guest_cid") {
        need_value();
        uint64_t cid = 0;
        auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), cid);
        // virtio 1.2 §5.10.4: CIDs 0-2 are reserved (hypervisor, local, host);
        // the config field is 64 bits but only 32 are used.
        if (ec != std::errc() || end != value.data() + value.size() || cid < 3 ||
            cid > 0xffffffffu) {
          throw common::Error(where + ": guest-cid must be a number from 3 to 4294967295, not \"" +
                              value + "\"");
        }
        spec.vsock.guest_cid = static_cast<uint32_t>(cid);
        have_cid = true;
      } else if (key == "uds-path" || key == "uds_path") {
        need_value();
        spec.vsock.uds_path = value;
      } else {
        bad();
      }
    } else {
      bad();
    }
  }

  if (spec.type == virtio::DeviceType::kBlock) {
    if (!spec.drive.path_on_host) throw common::Error(where + ": blk needs path=FILE");
    spec.drive.drive_id = spec.id.empty() ? "blk" : spec.id;
  } else if (spec.type == virtio::DeviceType::kVsock) {
    if (!have_cid) throw common::Error(where + ": vsock needs guest-cid=N");
    if (spec.vsock.uds_path.empty()) throw common::Error(where + ": vsock needs uds-path=PATH");
  }
  return spec;
}

std::unique_ptr<virtio::VirtioDevice> make_device(const DeviceSpec& spec, Logger& logger,
                                                  Metrics& metrics) {
  switch (spec.type) {
    case virtio::DeviceType::kBlock:
      return std::make_unique<virtio::BlockDevice>(spec.drive, logger, metrics);
    case virtio::DeviceType::kVsock:
      return std::make_unique<virtio::VsockDevice>(spec.vsock, logger, metrics);
    case virtio::DeviceType::kRng:
      return std::make_unique<virtio::EntropyDevice>(spec.entropy, logger, metrics);
    default:
      break;
  }
  throw common::Error("vhost-user: cannot serve device type " +
                      std::to_string(static_cast<uint32_t>(spec.type)));
}

}  // namespace ember::vmm::vhost_user
