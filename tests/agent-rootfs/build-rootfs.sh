#!/usr/bin/env bash
# Builds the busybox test rootfs for the agent's integration tests, from
# Debian's busybox-static (deploy/install-deps.sh installs it):
#   OUT/rootfs/        a directory: /bin/busybox plus one symlink per applet
#   OUT/rootfs.ext4    the same as an ext4 image (mkfs.ext4 -d), 32 MiB
#   OUT/rootfs.erofs   the same as an EROFS image, if mkfs.erofs exists
#
# usage: build-rootfs.sh OUT
# Takes well under a second; rebuilds only when busybox or this script
# changed (OUT/.stamp). Concurrent runs serialise on OUT/.lock.
set -euo pipefail

out=${1:?usage: build-rootfs.sh OUT}
busybox=${EMBER_BUSYBOX:-/bin/busybox}
die() { echo "build-rootfs: error: $*" >&2; exit 1; }

[ -x "$busybox" ] || die "$busybox not found (apt-get install busybox-static)"
file -L "$busybox" 2>/dev/null | grep -q "statically linked" ||
  ldd "$busybox" 2>&1 | grep -q "not a dynamic executable" ||
  die "$busybox is not statically linked (install busybox-static)"
command -v mkfs.ext4 >/dev/null || die "mkfs.ext4 not found (apt-get install e2fsprogs)"

mkdir -p "$out"
# Test binaries may call this concurrently: one builds, the others wait.
exec 9>"$out/.lock"
flock 9

stamp="$(sha256sum "$busybox" "$0" | sha256sum | cut -c1-16)"
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ] && [ -f "$out/rootfs.ext4" ]; then
  exit 0
fi

tmp=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
root=$tmp/rootfs
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,root,var/tmp}
chmod 1777 "$root/tmp" "$root/var/tmp"
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] && continue
  ln -sf busybox "$root/bin/$applet"
done
cat > "$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/:/bin/false
PASSWD
cat > "$root/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
GROUP
echo "ember-test" > "$root/etc/hostname"

# Reproducible: fixed timestamps, no random UUID/hash seed.
find "$root" -exec touch -h -d @0 {} +
mkfs.ext4 -q -F -d "$root" -L rootfs -U 6c6c6c6c-0000-4000-8000-000000000001 \
  -E hash_seed=6c6c6c6c-0000-4000-8000-000000000002 -T default "$tmp/rootfs.ext4" 32M >/dev/null
if command -v mkfs.erofs >/dev/null; then
  mkfs.erofs -q -T0 "$tmp/rootfs.erofs" "$root" >/dev/null 2>&1 || mkfs.erofs "$tmp/rootfs.erofs" "$root" >/dev/null
fi

rm -rf "$out/rootfs" "$out/rootfs.ext4" "$out/rootfs.erofs"
mv "$root" "$out/rootfs"
mv "$tmp/rootfs.ext4" "$out/rootfs.ext4"
[ -f "$tmp/rootfs.erofs" ] && mv "$tmp/rootfs.erofs" "$out/rootfs.erofs"
echo "$stamp" > "$out/.stamp"
