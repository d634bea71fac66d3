#!/usr/bin/env bash
# Test fixture: Debian's cloud kernel (a real bzImage) for the loader tests.
# Downloads the package linux-image-cloud-amd64 points at (apt-get download,
# no installation), extracts it with dpkg-deb into a cache directory and
# prints the path of its bzImage. Reuses the cache when it is already there.
#
# usage: fetch_debian_kernel.sh [cache-dir]   (default ~/.cache/ember/debian-kernel)
set -euo pipefail
cache=${1:-${HOME:-/root}/.cache/ember/debian-kernel}
mkdir -p "$cache"
cd "$cache"

existing=$(ls extracted/boot/vmlinuz-* 2>/dev/null | head -n1 || true)
if [[ -n "$existing" ]]; then
  echo "$cache/$existing"
  exit 0
fi

# linux-image-cloud-amd64 is a metapackage: its dependency is the kernel.
pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [[ -z "$pkg" ]]; then
  echo "fetch_debian_kernel: cannot resolve linux-image-cloud-amd64 (apt-get update needed?)" >&2
  exit 1
fi
rm -rf download extracted.tmp
mkdir -p download
(cd download && apt-get download "$pkg" >/dev/null 2>&1) || {
  echo "fetch_debian_kernel: apt-get download $pkg failed" >&2
  exit 1
}
dpkg-deb -x download/*.deb extracted.tmp
mv extracted.tmp extracted
rm -rf download
found=$(ls extracted/boot/vmlinuz-* 2>/dev/null | head -n1 || true)
if [[ -z "$found" ]]; then
  echo "fetch_debian_kernel: $pkg has no /boot/vmlinuz-*" >&2
  exit 1
fi
echo "$cache/$found"
