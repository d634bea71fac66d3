#!/usr/bin/env bash
# Builds ember's guest kernel: Debian's linux-source-6.1, `tinyconfig` plus
# guest-agent/image/kernel.config, no modules. Produces an ELF `vmlinux` (PVH
# note, for ember-vmm and QEMU) and a `bzImage`.
#
# usage: build-kernel.sh [--out DIR] [--config-only] [--print-key]
#   --out DIR      copy vmlinux, bzImage and the final .config (as kernel.config)
#                  into DIR (files whose content did not change are left alone)
#   --config-only  configure and check the fragment, do not compile (~30 s)
#   --print-key    print the cache key and exit
#
# Results are cached in ${EMBER_CACHE_DIR:-~/.cache/ember}/kernel/<key>/, where
# the key hashes the fragment's settings (not its comments), the linux-source
# package version, the compiler version and the build steps of this script (the
# bodies of the *_steps functions and kmake, as bash prints them: comments and
# layout do not count).
# With the same key a second run takes well under a second and prints "cached".
#
# The tarball is unpacked once per source version into kernel/src-<key>/ (kept:
# unpacking and deleting 70,000 files costs minutes on a busy disk) and every
# build happens out of tree (make O=) in a temporary directory under the cache,
# published by renaming it when complete. Reclaim the space with
# `rm -rf ~/.cache/ember/kernel`.
#
# Environment: EMBER_LINUX_SOURCE (tarball, default
# /usr/src/linux-source-6.1.tar.xz), EMBER_CACHE_DIR, EMBER_KERNEL_JOBS
# (default: nproc).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fragment=$here/kernel.config
tarball=${EMBER_LINUX_SOURCE:-/usr/src/linux-source-6.1.tar.xz}
cache_root=${EMBER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ember}/kernel
jobs=${EMBER_KERNEL_JOBS:-$(nproc)}

out_dir=""
config_only=0
print_key=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out_dir=${2:?--out needs a directory}; shift 2 ;;
    --out=*) out_dir=${1#--out=}; shift ;;
    --config-only) config_only=1; shift ;;
    --print-key) print_key=1; shift ;;
    -h|--help) sed -n '2,/^set -euo pipefail/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-kernel: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

die() { echo "build-kernel: error: $*" >&2; exit 1; }

[ -r "$fragment" ] || die "config fragment $fragment is missing"
[ -r "$tarball" ] || die "kernel source $tarball not found (apt-get install linux-source-6.1, or run deploy/install-deps.sh)"

# --- build steps (their text is part of the cache key) ----------------------

# make with the settings every step shares. KBUILD_BUILD_* pin the version
# banner so two builds of the same key do not differ by who built them when.
kmake() {
  make ARCH=x86_64 KBUILD_BUILD_USER=ember KBUILD_BUILD_HOST=ember \
    KBUILD_BUILD_TIMESTAMP="Thu Jan  1 00:00:00 UTC 1970" "$@"
}

# Unpacks the tree without the documentation and the tools' test suites and
# perf (a fifth of the files, none of them read by a kernel build). Other
# architectures must stay: Kconfig files source theirs (crypto/Kconfig).
unpack_steps() {
  tar -xJf "$tarball" --exclude='linux-source-*/Documentation/*/*' \
    --exclude='linux-source-*/tools/testing' --exclude='linux-source-*/tools/perf'
}

# Run in the (empty) object directory; $tree is the pristine source tree.
configure_steps() {
  kmake -C "$tree" O="$PWD" tinyconfig &&
    "$tree/scripts/kconfig/merge_config.sh" -m -O "$PWD" .config "$fragment" &&
    kmake -C "$tree" O="$PWD" olddefconfig
}

compile_steps() {
  kmake -C "$tree" O="$PWD" -j"$jobs" bzImage
}

# Every line of the fragment must be in the final .config exactly as written;
# olddefconfig silently drops an option whose dependencies are not met.
check_config() {
  local config=$1 lost=() line name value actual
  while IFS= read -r line; do
    if [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
      name=${BASH_REMATCH[1]} value=${BASH_REMATCH[2]}
      actual=$(grep -E "^$name=|^# $name is not set" "$config" || true)
      [ "$actual" = "$name=$value" ] || lost+=("$name=$value (got: ${actual:-absent})")
    elif [[ $line =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
      name=${BASH_REMATCH[1]}
      actual=$(grep -E "^$name=" "$config" || true)
      [ -z "$actual" ] || lost+=("$name is not set (got: $actual)")
    fi
  done <"$fragment"
  if [ ${#lost[@]} -gt 0 ]; then
    echo "build-kernel: ${#lost[@]} option(s) of $fragment did not survive olddefconfig" \
      "(add their dependencies to the fragment):" >&2
    printf '  %s\n' "${lost[@]}" >&2
    return 1
  fi
}

# --- running steps -------------------------------------------------------------

# Long steps run as a background job in their own process group (set -m), so
# that an interrupt reaches the trap at once (bash defers traps until a
# foreground command ends) and the trap can stop the whole step, make's
# compilers included.
set -m
step_pid=""
work_dirs=()

cleanup() {
  local d
  for d in "${work_dirs[@]}"; do rm -rf "$d"; done
}

on_signal() {
  if [ -n "$step_pid" ]; then
    kill -TERM -- "-$step_pid" 2>/dev/null || true
    wait "$step_pid" 2>/dev/null || true
  fi
  echo "build-kernel: interrupted; removing the partial build" >&2
  exit "$1"
}

trap cleanup EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

# make_work_dir VAR PREFIX: a fresh directory under the cache, removed when
# the script ends, its path stored in VAR (no $(...): that would be a
# subshell, and the directory would escape cleanup).
make_work_dir() {
  local dir
  dir=$(mktemp -d "$cache_root/$2.XXXXXX")
  work_dirs+=("$dir")
  printf -v "$1" '%s' "$dir"
}

# run_step LOG WHAT DIR COMMAND...: COMMAND (a function or program) in DIR,
# output to LOG; on failure show the log's tail and keep a copy of it.
run_step() {
  local log=$1 what=$2 dir=$3 status=0
  shift 3
  (cd "$dir" && "$@") >"$log" 2>&1 &
  step_pid=$!
  wait "$step_pid" || status=$?
  step_pid=""
  if [ $status -ne 0 ]; then
    tail -n 60 "$log" >&2
    cp "$log" "$cache_root/last-failure.log" 2>/dev/null || true
    die "$what failed (log: $cache_root/last-failure.log)"
  fi
}

# --- cache keys --------------------------------------------------------------

source_version() {
  local v=""
  if [ "$tarball" = /usr/src/linux-source-6.1.tar.xz ]; then
    v=$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null || true)
  fi
  if [ -n "$v" ]; then
    echo "linux-source-6.1 $v"
  else
    sha256sum "$tarball" | cut -d' ' -f1
  fi
}

source_key() {
  { echo "source: $(source_version)"; declare -f unpack_steps; } | sha256sum | cut -c1-16
}

cache_key() {
  {
    # Only the settings: editing the fragment's comments does not rebuild.
    echo "fragment:"; grep -E '^CONFIG_|^# CONFIG_[A-Za-z0-9_]+ is not set$' "$fragment"
    echo "source: $(source_version)"
    echo "compiler: $(gcc --version | head -n1)"
    echo "steps:"; declare -f kmake unpack_steps configure_steps compile_steps
  } | sha256sum | cut -c1-16
}

key=$(cache_key)
if [ $print_key = 1 ]; then
  echo "$key"
  exit 0
fi
result=$cache_root/$key
start=$(date +%s.%N)

elapsed() { printf '%.1f' "$(echo "$(date +%s.%N) - $start" | bc)"; }

have_result() { [ -f "$result/vmlinux" ] && [ -f "$result/bzImage" ] && [ -f "$result/kernel.config" ]; }

# Sets `tree` to the unpacked source, unpacking it first if needed.
ensure_source() {
  local src=$cache_root/src-$(source_key) tmp
  if [ ! -f "$src/.complete" ]; then
    exec 8>"$cache_root/.lock-src-$(source_key)"
    flock 8
    if [ ! -f "$src/.complete" ]; then
      rm -rf "$src" "$cache_root/tmp.src-$(source_key)".*
      make_work_dir tmp "tmp.src-$(source_key)"
      echo "build-kernel: unpacking $tarball into the cache"
      run_step "$tmp/unpack.log" "unpacking $tarball" "$tmp" unpack_steps
      touch "$tmp/.complete"
      mv -T "$tmp" "$src"
    fi
    exec 8>&-
  fi
  tree=$(find "$src" -mindepth 1 -maxdepth 1 -type d -name 'linux-source-*' | head -n1)
  [ -n "$tree" ] || die "$tarball does not contain a linux-source-* directory"
}

mkdir -p "$cache_root"

if [ $config_only = 1 ]; then
  ensure_source
  make_work_dir work tmp.config
  run_step "$work/configure.log" "configuring the kernel" "$work" configure_steps
  check_config "$work/.config" || exit 1
  echo "build-kernel: fragment checks out: all $(grep -cE '^CONFIG_|^# CONFIG_' "$fragment") options survive olddefconfig ($(elapsed) s)"
  exit 0
fi

if have_result; then
  echo "build-kernel: cached $result ($(elapsed) s)"
else
  # One builder per key: a concurrent run waits here, then finds the result.
  exec 9>"$cache_root/.lock-$key"
  flock 9
  if have_result; then
    echo "build-kernel: cached $result (built by a concurrent run, $(elapsed) s)"
  else
    # Leftovers of an interrupted build of this key (we hold its lock).
    rm -rf "$cache_root/tmp.$key".* "$result"
    ensure_source
    make_work_dir work "tmp.$key"
    echo "build-kernel: building key $key in $work (-j$jobs; this takes minutes)"
    mkdir "$work/obj"
    run_step "$work/configure.log" "configuring the kernel" "$work/obj" configure_steps
    check_config "$work/obj/.config" || exit 1
    run_step "$work/build.log" "building the kernel" "$work/obj" compile_steps
    mkdir "$work/result"
    cp "$work/obj/vmlinux" "$work/result/vmlinux"
    cp "$work/obj/arch/x86/boot/bzImage" "$work/result/bzImage"
    cp "$work/obj/.config" "$work/result/kernel.config"
    # Publish atomically: a reader sees either no result dir or a whole one.
    mv -T "$work/result" "$result"
    echo "build-kernel: built $result in $(elapsed) s"
  fi
  exec 9>&-
fi

size_of() { stat -c %s "$1"; }
echo "build-kernel: vmlinux $(size_of "$result/vmlinux") bytes, bzImage $(size_of "$result/bzImage") bytes"

if [ -n "$out_dir" ]; then
  mkdir -p "$out_dir"
  copied=0
  for f in vmlinux bzImage kernel.config; do
    # Unchanged files keep their mtime, so whatever depends on them in the
    # build does not rerun.
    if cmp -s "$result/$f" "$out_dir/$f"; then continue; fi
    # Copy through a temporary name so a reader never sees half a file.
    cp "$result/$f" "$out_dir/.$f.tmp"
    mv -f "$out_dir/.$f.tmp" "$out_dir/$f"
    copied=$((copied + 1))
  done
  echo "build-kernel: $out_dir: $copied of 3 files (vmlinux, bzImage, kernel.config) updated"
fi
