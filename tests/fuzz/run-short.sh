#!/usr/bin/env bash
# Short fuzzing pass for CI: builds the libFuzzer targets of the `fuzz` preset
# (clang + libFuzzer + ASan/UBSan) and runs each for EMBER_FUZZ_SECONDS
# (default 30). Exits non-zero if a target crashes, leaks or trips a
# sanitizer; the reproducer lands in <build>/fuzz-artifacts/<target>/.
#
#   tests/fuzz/run-short.sh                 # all targets, 30 s each
#   EMBER_FUZZ_SECONDS=300 tests/fuzz/run-short.sh fuzz_vsock_tx
#
# The corpus is kept in <build>/fuzz-corpus/<target>/ so later runs resume.
set -euo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
build=${EMBER_FUZZ_BUILD_DIR:-$src/build/fuzz}
seconds=${EMBER_FUZZ_SECONDS:-30}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_virtqueue fuzz_block_request fuzz_vsock_tx)

cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DEMBER_FUZZ=ON >/dev/null
cmake --build "$build" -j2 --target "${targets[@]}"

# A few well-formed seeds so the first seconds are not spent finding the
# basic shapes (see each target for its input layout).
seed() {  # seed <target> <name> <python bytes expression>
  mkdir -p "$build/fuzz-corpus/$1"
  python3 -c "import sys; sys.stdout.buffer.write($3)" >"$build/fuzz-corpus/$1/seed-$2"
}
# vsock: 12-byte packet descriptors (+ payload): REQUEST to port 52, RW with
# 300 payload bytes, CREDIT_REQUEST, SHUTDOWN(RCV|SEND), RST.
seed fuzz_vsock_tx connect-rw-close \
  "bytes([0,0,0,0,0,0,1,0,0,0,0,3]) + bytes([0,0,0,0,0,0,5,0,0,0,1,7]) + b'x'*300 + bytes([0,0,0,0,0,0,7,0,0,0,0,3]) + bytes([0,0,0,0,0,0,4,3,0,0,0,3]) + bytes([0,0,0,0,0,0,3,0,0,0,0,3])"
seed fuzz_vsock_tx host-initiated \
  "bytes([0,0,0,0,2,0,2,0,0,0,0,3]) + bytes([0,0,0,0,2,0,5,0,0,0,2,0x4f]) + b'y'*600"
# block: 4 config bytes, then descriptors {addr u32, len u32, flags u16, next u16, publish, pad}.
seed fuzz_block_request read \
  "bytes([0,3,0,0]) + (0x1000+64).to_bytes(4,'little') + (16).to_bytes(4,'little') + bytes([1,0,1,0,1,0,0,0]) + (0x2000).to_bytes(4,'little') + (512).to_bytes(4,'little') + bytes([3,0,2,0,0,0,0,0]) + (0x3000).to_bytes(4,'little') + (1).to_bytes(4,'little') + bytes([2,0,0,0,0,0,0,0]) + bytes(16)"
# virtqueue: size 16, one chain of two descriptors at index 0.
seed fuzz_virtqueue two-descriptors \
  "bytes([4,0,0,0,3,0,0,0]) + (0x3000).to_bytes(8,'little') + (64).to_bytes(4,'little') + bytes([1,0,1,0]) + (0x4000).to_bytes(8,'little') + (64).to_bytes(4,'little') + bytes([2,0,0,0]) + bytes(0x1000-32) + bytes([0,0,1,0,0,0])"

status=0
for t in "${targets[@]}"; do
  bin=$(find "$build" -type f -name "$t" -perm -u+x | head -1)
  corpus="$build/fuzz-corpus/$t"
  artifacts="$build/fuzz-artifacts/$t"
  mkdir -p "$corpus" "$artifacts"
  echo "== $t: ${seconds}s"
  # -entropic=0: the entropic schedule's bookkeeping dominates with our
  # instrumented libraries (10x fewer executions per second).
  if ! "$bin" "$corpus" -max_total_time="$seconds" -entropic=0 -len_control=0 -max_len=8192 \
      -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$artifacts/" \
      2> >(grep -E '^#[0-9]+[[:space:]]+DONE|ERROR|SUMMARY|stat::number_of_executed_units|artifact' >&2); then
    echo "!! $t failed; reproducer in $artifacts" >&2
    status=1
  fi
done
exit $status
