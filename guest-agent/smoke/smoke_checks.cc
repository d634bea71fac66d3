#include "guest-agent/smoke/smoke_checks.h"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <optional>
#include <sstream>

#include "vmm/common/error.h"
#include "vmm/common/unique_fd.h"

namespace ember::agent::smoke {
namespace fs = std::filesystem;

std::string read_text_file(const fs::path& path) {
  common::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) common::throw_errno("read " + path.string());
  std::string content;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      common::throw_errno("read " + path.string());
    }
    if (n == 0) break;
    content.append(buf, static_cast<size_t>(n));
  }
  return content;
}

namespace {

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

// The single entry of a sysfs class directory such as virtio0/block/ (vda).
std::string only_child(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return "";
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir, ec)) names.push_back(entry.path().filename());
  std::sort(names.begin(), names.end());
  return names.empty() ? "" : names.front();
}

uint64_t index_of(const std::string& name) {
  size_t digits = name.find_first_of("0123456789");
  return digits == std::string::npos ? UINT64_MAX : std::stoull(name.substr(digits));
}

}  // namespace

std::vector<VirtioDeviceInfo> list_virtio_devices(const fs::path& sysfs_root) {
  fs::path bus = sysfs_root / "bus/virtio/devices";
  std::vector<VirtioDeviceInfo> devices;
  std::error_code ec;
  if (!fs::is_directory(bus, ec)) return devices;  // no virtio device was probed
  for (const auto& entry : fs::directory_iterator(bus, ec)) {
    VirtioDeviceInfo info;
    info.name = entry.path().filename();
    fs::path dir = entry.path();
    std::string id = trim(read_text_file(dir / "device"));
    try {
      info.device_id = static_cast<uint32_t>(std::stoul(id, nullptr, 0));
    } catch (const std::exception&) {
      throw common::Error("parse " + (dir / "device").string() + ": not a number: \"" + id + "\"");
    }
    fs::path driver = fs::read_symlink(dir / "driver", ec);
    info.driver = ec ? "none" : driver.filename().string();
    // Bit i of the negotiated features is character i of this file.
    std::error_code feature_ec;
    if (fs::exists(dir / "features", feature_ec)) {
      std::string bits = trim(read_text_file(dir / "features"));
      for (size_t i = 0; i < bits.size() && i < 64; ++i) {
        if (bits[i] == '1') info.features |= uint64_t{1} << i;
      }
    }
    info.block = only_child(dir / "block");
    info.net = only_child(dir / "net");
    devices.push_back(std::move(info));
  }
  if (ec) throw common::Error("list " + bus.string() + ": " + ec.message());
  std::sort(devices.begin(), devices.end(), [](const auto& a, const auto& b) {
    return std::make_pair(index_of(a.name), a.name) < std::make_pair(index_of(b.name), b.name);
  });
  return devices;
}

std::string format_virtio_line(const VirtioDeviceInfo& d) {
  char head[160];
  std::snprintf(head, sizeof head, "EMBER-VIRTIO %s device=0x%04x driver=%s features=0x%llx",
                d.name.c_str(), d.device_id, d.driver.c_str(),
                static_cast<unsigned long long>(d.features));
  std::string line = head;
  if (!d.block.empty()) line += " block=" + d.block;
  if (!d.net.empty()) line += " net=" + d.net;
  return line;
}

std::string read_uptime(const fs::path& proc_root) {
  std::string content = read_text_file(proc_root / "uptime");
  std::string first = content.substr(0, content.find(' '));
  if (first.empty() || first.find_first_not_of("0123456789.") != std::string::npos) {
    throw common::Error("parse " + (proc_root / "uptime").string() + ": unexpected \"" +
                        trim(content) + "\"");
  }
  return first;
}

std::vector<std::string> smoke_actions(const std::string& cmdline,
                                       const std::vector<std::string>& fallback) {
  static const std::string kKey = "ember.smoke=";
  std::istringstream words(cmdline);
  std::string word;
  std::optional<std::string> value;
  while (words >> word) {
    if (word.rfind(kKey, 0) == 0) value = word.substr(kKey.size());  // the last one wins
  }
  if (!value) return fallback;
  std::vector<std::string> actions;
  std::istringstream list(*value);
  std::string action;
  while (std::getline(list, action, ',')) {
    if (!action.empty()) actions.push_back(action);
  }
  return actions;
}

}  // namespace ember::agent::smoke
