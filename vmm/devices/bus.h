// Port-I/O and MMIO buses: which device answers a guest access at an address.
// The layout is fixed before the vCPUs start; lookups need no lock. Devices
// serialise their own state (vCPU threads may access them concurrently).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>

namespace ember::vmm {

class BusDevice {
 public:
  virtual ~BusDevice() = default;
  // `offset` is relative to the base the device was inserted at.
  virtual void read(uint64_t offset, std::span<uint8_t> data) = 0;
  virtual void write(uint64_t offset, std::span<const uint8_t> data) = 0;
};

class Bus {
 public:
  // Throws common::Error when the range is empty, wraps, or overlaps another device.
  void insert(std::shared_ptr<BusDevice> device, uint64_t base, uint64_t len);

  // False when no device covers all of [addr, addr + data.size()); reads then
  // leave `data` untouched (the caller decides what unclaimed reads return).
  bool read(uint64_t addr, std::span<uint8_t> data) const;
  bool write(uint64_t addr, std::span<const uint8_t> data) const;

 private:
  struct Entry {
    uint64_t len;
    std::shared_ptr<BusDevice> device;
  };
  // The device covering [addr, addr + len) and its base, or nullptr.
  const std::pair<const uint64_t, Entry>* find(uint64_t addr, uint64_t len) const;

  std::map<uint64_t, Entry> devices_;  // by base address
};

}  // namespace ember::vmm
