#include "vmm/devices/bus.h"

#include <cstdio>

#include "vmm/common/error.h"

namespace ember::vmm {
namespace {
std::string range(uint64_t base, uint64_t len) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "[%#llx, %#llx)", static_cast<unsigned long long>(base),
                static_cast<unsigned long long>(base + len));
  return buf;
}
}  // namespace

void Bus::insert(std::shared_ptr<BusDevice> device, uint64_t base, uint64_t len) {
  if (len == 0 || base + len < base) throw common::Error("bus: invalid device range " + range(base, len));
  auto next = devices_.lower_bound(base);
  if (next != devices_.end() && next->first < base + len) {
    throw common::Error("bus: device range " + range(base, len) + " overlaps " +
                        range(next->first, next->second.len));
  }
  if (next != devices_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second.len > base) {
      throw common::Error("bus: device range " + range(base, len) + " overlaps " +
                          range(prev->first, prev->second.len));
    }
  }
  devices_.emplace(base, Entry{len, std::move(device)});
}

const std::pair<const uint64_t, Bus::Entry>* Bus::find(uint64_t addr, uint64_t len) const {
  auto it = devices_.upper_bound(addr);
  if (it == devices_.begin()) return nullptr;
  --it;
  uint64_t offset = addr - it->first;
  if (offset >= it->second.len || len > it->second.len - offset) return nullptr;
  return &*it;
}

bool Bus::read(uint64_t addr, std::span<uint8_t> data) const {
  const auto* entry = find(addr, data.size());
  if (!entry) return false;
  entry->second.device->read(addr - entry->first, data);
  return true;
}

bool Bus::write(uint64_t addr, std::span<const uint8_t> data) const {
  const auto* entry = find(addr, data.size());
  if (!entry) return false;
  entry->second.device->write(addr - entry->first, data);
  return true;
}

}  // namespace ember::vmm
