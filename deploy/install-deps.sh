#!/usr/bin/env bash
# Installs every Debian bookworm package ember needs to build, test and run.
# Idempotent and quiet: when everything is present it only runs dpkg-query.
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config clang lld llvm libclang-rt-14-dev binutils
  # libraries
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev libprotoc-dev protobuf-compiler
  libboost-dev libseccomp-dev nlohmann-json3-dev libgtest-dev libgmock-dev liburing-dev
  # guest image: kernel build and initramfs
  linux-source-6.1 flex bison bc libelf-dev libssl-dev cpio xz-utils lz4 kmod
  crun busybox-static e2fsprogs erofs-utils
  # tests and the main job
  qemu-system-x86 containerd runc containernetworking-plugins iproute2 socat curl python3
  procps psmisc util-linux
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = installed ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "install-deps: installing ${#missing[@]} package(s): ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
