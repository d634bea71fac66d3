// Preconditions of tests that need root, /dev/kvm, QEMU, containerd or the
// guest image. Outside CI a missing precondition skips the test with a
// one-line reason; in CI (EMBER_CI=1, set by .ci/run) it fails, because CI
// installs everything and a silent skip would hide real breakage.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

namespace ember::testing {

inline bool in_ci() {
  const char* v = std::getenv("EMBER_CI");
  return v && std::string(v) == "1";
}

}  // namespace ember::testing

// For what no install script can provide: a host without hardware
// virtualisation has no usable /dev/kvm (nested guests often don't). The test
// skips with its reason even in CI; CI's summary lists it as skipped.
#define EMBER_REQUIRE_HOST(condition, reason)                                 \
  do {                                                                        \
    if (!(condition)) GTEST_SKIP() << "host cannot: " << (reason);            \
  } while (0)

// Use at the top of a TEST body: EMBER_REQUIRE(cond, "why the test cannot run").
#define EMBER_REQUIRE(condition, reason)                                      \
  do {                                                                        \
    if (!(condition)) {                                                       \
      if (::ember::testing::in_ci()) {                                        \
        FAIL() << "required in CI but missing: " << (reason);                 \
      } else {                                                                \
        GTEST_SKIP() << (reason);                                             \
      }                                                                       \
    }                                                                         \
  } while (0)
