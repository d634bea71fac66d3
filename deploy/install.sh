#!/usr/bin/env bash
# Installs ember from a build tree:
#   /usr/local/bin/containerd-shim-ember-v2, ember-vmm, ember-kvm-check
#   /usr/local/share/ember/{vmlinux,bzImage,initramfs-agent.cpio}
#   /etc/ember/config.toml (only if absent; deploy/config.toml)
# and prints how to register the runtime with containerd.
#
#   deploy/install.sh [--build-dir build/release] [--prefix /usr/local] [--dest-root DIR]
#
# --dest-root installs into a staging tree (packaging, tests) instead of /.
# Build first: cmake --preset release && cmake --build --preset release &&
# cmake --build --preset release --target guest-image
set -euo pipefail
cd "$(dirname "$0")/.."
build=build/release
prefix=/usr/local
root=""
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build=$2; shift 2 ;;
    --prefix) prefix=$2; shift 2 ;;
    --dest-root) root=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
die() { echo "install: error: $*" >&2; exit 1; }

shim=$build/shim/containerd-shim-ember-v2
[ -x "$shim" ] || die "$shim not built (cmake --build --preset release)"
for f in vmlinux initramfs-agent.cpio; do
  [ -f "$build/guest/$f" ] || die "$build/guest/$f missing (cmake --build --preset release --target guest-image)"
done

bindir=$root$prefix/bin
datadir=$root$prefix/share/ember
confdir=$root/etc/ember
install -d "$bindir" "$datadir" "$confdir"
install -m 0755 "$shim" "$bindir/containerd-shim-ember-v2"
for exe in ember-vmm ember-kvm-check; do
  path=$(find "$build/vmm" -maxdepth 3 -type f -name "$exe" -perm -u+x 2>/dev/null | head -1)
  if [ -n "$path" ]; then install -m 0755 "$path" "$bindir/$exe"; fi
done
for f in vmlinux bzImage initramfs-agent.cpio; do
  if [ -f "$build/guest/$f" ]; then install -m 0644 "$build/guest/$f" "$datadir/$f"; fi
done
if [ ! -e "$confdir/config.toml" ]; then
  install -m 0644 deploy/config.toml "$confdir/config.toml"
  if [ "$prefix" != /usr/local ]; then
    sed -i "s|/usr/local/share/ember|$prefix/share/ember|" "$confdir/config.toml"
  fi
fi
echo "install: installed into ${root:-/}: $bindir/containerd-shim-ember-v2, $datadir, $confdir/config.toml"
cat <<MSG

Next:
  * containerd: merge deploy/containerd/ember-runtime.toml into /etc/containerd/config.toml
    and restart containerd (systemctl restart containerd).
  * ctr:        ctr run --rm --runtime io.containerd.ember.v2 docker.io/library/busybox:latest t1 uname -r
  * Kubernetes: kubectl apply -f deploy/kubernetes/runtimeclass.yaml
MSG
