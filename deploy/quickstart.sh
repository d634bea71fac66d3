#!/usr/bin/env bash
# ember quickstart (the README's main-job command): installs the
# dependencies, builds the `release` preset and the guest image, starts a
# private containerd (its own root, state, sockets and config in a temporary
# directory: a system containerd is never touched), imports a busybox image
# built offline, and runs a container inside an ember microVM:
#
#   ctr run --rm --runtime io.containerd.ember.v2 docker.io/library/ember-busybox:latest hello \
#       sh -c 'echo Hello from $(uname -r) inside an ember microVM'
#
# The kernel release it prints is the guest's, not the host's.
#
#   deploy/quickstart.sh               the container demo (needs root)
#   deploy/quickstart.sh --guest-only  boot the bare guest image under QEMU (deploy/guest-boot-demo.sh)
#
# Environment: EMBER_PRESET (default release), EMBER_KEEP=1 keeps the
# temporary directory (logs) for a look afterwards.
# The first run builds the guest kernel (minutes; cached in ~/.cache/ember).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--guest-only" ]; then
  exec bash deploy/guest-boot-demo.sh
fi
preset=${EMBER_PRESET:-release}

step() { echo; echo "==> $*"; }
die() { echo "quickstart: error: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root: containerd, snapshots and mounts need it"

step "Installing dependencies (deploy/install-deps.sh)"
bash deploy/install-deps.sh

step "Configuring and building the '$preset' preset (the shim, the KVM self-check)"
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" --target containerd-shim-ember-v2 ember-kvm-check

step "Building the guest image (kernel + initramfs with ember-agent and crun)"
cmake --build --preset "$preset" --target guest-image
build=$PWD/build/$preset
guest=$build/guest
for f in vmlinux initramfs-agent.cpio; do
  [ -f "$guest/$f" ] || die "$guest/$f missing after the guest-image build"
done
[ -x "$build/shim/containerd-shim-ember-v2" ] || die "$build/shim/containerd-shim-ember-v2 was not built"

work=$(mktemp -d "${TMPDIR:-/tmp}/ember-quickstart.XXXXXX")
ctr_cmd=(ctr --address "$work/containerd.sock" -n ember)
containerd_pid=""
cleanup() {
  set +e
  if [ -n "$containerd_pid" ]; then
    for id in $("${ctr_cmd[@]}" tasks ls -q 2>/dev/null); do
      "${ctr_cmd[@]}" tasks kill -s SIGKILL "$id" >/dev/null 2>&1
      "${ctr_cmd[@]}" tasks rm -f "$id" >/dev/null 2>&1
    done
    for id in $("${ctr_cmd[@]}" containers ls -q 2>/dev/null); do "${ctr_cmd[@]}" containers rm "$id" >/dev/null 2>&1; done
    kill "$containerd_pid" 2>/dev/null && wait "$containerd_pid" 2>/dev/null
  fi
  grep -o " $work[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null
  if [ "${EMBER_KEEP:-0}" = 1 ]; then echo "quickstart: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

step "Starting a private containerd in $work"
cat > "$work/ember.toml" <<TOML
# ember runtime configuration (shim/README.md): the guest built above.
[vm]
kernel = "$guest/vmlinux"
initrd = "$guest/initramfs-agent.cpio"
memory_mib = 256
[shim]
debug_log = "$work/shim.log"
state_dir = "$work/ember-state"
kvm_check = "$build/vmm/kvm_check/ember-kvm-check"
TOML
cat > "$work/config.toml" <<TOML
version = 2
root = "$work/root"
state = "$work/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$work/containerd.sock"
[ttrpc]
  address = "$work/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$work/opt"
TOML
# The shim is found on containerd's PATH (runtime io.containerd.ember.v2 ->
# containerd-shim-ember-v2).
PATH="$build/shim:$PATH" containerd --config "$work/config.toml" >"$work/containerd.log" 2>&1 &
containerd_pid=$!
for _ in $(seq 100); do
  "${ctr_cmd[@]}" version >/dev/null 2>&1 && break
  kill -0 "$containerd_pid" 2>/dev/null || { cat "$work/containerd.log" >&2; die "containerd exited"; }
  sleep 0.1
done
"${ctr_cmd[@]}" version >/dev/null || die "containerd did not come up (log: $work/containerd.log)"

step "Importing busybox (built offline from Debian's busybox-static)"
python3 deploy/oci-image/build-oci-image.py --out "$work/ember-busybox.tar"
"${ctr_cmd[@]}" images import "$work/ember-busybox.tar"

step "Running a container in an ember microVM"
echo "+ ctr run --rm --runtime io.containerd.ember.v2 docker.io/library/ember-busybox:latest hello sh -c 'echo Hello from \$(uname -r) inside an ember microVM'"
start=$(date +%s%N)
set +e
output=$("${ctr_cmd[@]}" run --rm --runtime io.containerd.ember.v2 --runtime-config-path "$work/ember.toml" \
  docker.io/library/ember-busybox:latest hello sh -c 'echo Hello from $(uname -r) inside an ember microVM' 2>&1)
status=$?
set -e
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "$output"
if [ "$status" -ne 0 ]; then
  echo "--- containerd log ---" >&2; tail -20 "$work/containerd.log" >&2
  echo "--- shim log ---" >&2; tail -40 "$work/shim.log" >&2 || true
  die "ctr run failed with status $status"
fi
guest_release=$(echo "$output" | sed -n 's/^Hello from \(.*\) inside an ember microVM.*/\1/p' | tr -d '\r')
[ -n "$guest_release" ] || die "the container did not print its greeting"
echo
echo "quickstart: OK in ${elapsed_ms} ms: the container ran on guest kernel $guest_release (host kernel: $(uname -r))"
[ "$guest_release" != "$(uname -r)" ] || die "the greeting came from the host kernel, not a microVM"
