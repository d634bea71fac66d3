// What both sides of the vhost-user end-to-end test agree on: the guest's
// /init (tests/e2e/guest/vhost_user_guest.cc) and the host's test
// (tests/e2e/vhost_user_test.cc) use these vsock ports, sizes and the byte
// stream they send, and print the same checksum over it. Standard library
// only: the guest is built without ember-common.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace ember::testing::vhost_user_e2e {

// The guest listens here; the host connects and gets its bytes echoed.
inline constexpr uint32_t kEchoPort = 5000;
// The host listens here; the guest connects and sends kGuestSendBytes.
inline constexpr uint32_t kHostPort = 5001;
inline constexpr size_t kGuestSendBytes = 512 * 1024;
// The pattern file the guest writes to ember-blk (/big.bin).
inline constexpr size_t kBigFileBytes = 1 << 20;

// FNV-1a, 64 bit.
inline uint64_t fnv1a(const uint8_t* data, size_t len) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < len; ++i) {
    hash ^= data[i];
    hash *= 0x100000001b3ull;
  }
  return hash;
}

// A checksum as the console markers print it: 16 lower-case hex digits.
inline std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// The byte stream both sides generate: byte i is (i * 131 + i / 4096) & 0xff.
inline std::vector<uint8_t> pattern(size_t len) {
  std::vector<uint8_t> data(len);
  for (size_t i = 0; i < len; ++i) data[i] = static_cast<uint8_t>(i * 131 + i / 4096);
  return data;
}

}  // namespace ember::testing::vhost_user_e2e
