// Finding and preparing the guest's block devices. virtio-mmio has no
// hot-plug, so the VM boots with spare drive slots and the host swaps a
// slot's backing file and raises a config-change interrupt; the guest driver
// then updates the capacity. The agent resolves a drive (by path or by its
// virtio-blk serial), waits for that capacity, and drops cached blocks that
// belonged to the slot's previous backing file.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace ember::agent {

// "/dev/vdb" stays as it is; a serial is looked up in `sys_block`/*/serial.
// Throws common::Error if no device has that serial.
std::string resolve_block_device(const std::string& device, const std::string& serial,
                                 const std::string& sys_block = "/sys/block");

// Capacity in bytes (BLKGETSIZE64); throws naming the device.
uint64_t block_device_size(const std::string& device);

// BLKFLSBUF: forget cached blocks (they may belong to the previous backing
// file of this slot). No-op for anything that is not a block device.
void flush_block_device(const std::string& device);

// Polls until the device exists and has `expected` bytes (0: any non-zero
// size). Returns the size; throws on timeout, naming what was seen.
uint64_t wait_for_block_device(const std::string& device, uint64_t expected,
                               std::chrono::milliseconds timeout);

}  // namespace ember::agent
