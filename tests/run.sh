#!/usr/bin/env bash
# Runs every ember test: installs dependencies, builds the `ci` preset and the
# guest image (kernel cached under ~/.cache/ember), then runs CTest.
# Extra arguments go to ctest (e.g. `tests/run.sh -L unit`, `-R GuestBoot`).
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${EMBER_PRESET:-ci}

bash deploy/install-deps.sh
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset"
cmake --build --preset "$preset" --target guest-image
ctest --preset "$preset" "$@"
