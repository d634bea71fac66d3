#!/usr/bin/env python3
"""Builds a guest initramfs: an uncompressed, reproducible `newc` cpio archive.

usage: build-initramfs.py --init FILE [--bin FILE[:DEST]]... [--file SRC:DEST]...
                          [--dir DEST]... [--symlink DEST:TARGET]... --out FILE

  --init FILE          becomes /init (the kernel runs it as PID 1)
  --bin FILE[:DEST]    an executable (DEST defaults to /bin/<name>), packed with
                       every shared library it needs and the dynamic loader
  --file SRC:DEST      a plain file, copied as is (mode 0755 if SRC is
                       executable by its owner, else 0644)
  --dir DEST           an empty directory (mode 0755)
  --symlink DEST:TARGET  a symbolic link DEST pointing at TARGET
  --out FILE           the archive to write (replaced atomically)
  --no-strip           keep symbols and debug info of --init and --bin ELF
                       files (by default they are packed `strip --strip-all`ed:
                       the initramfs lives in guest RAM)
  --list               print the archive's entries to stdout

Every archive also holds the skeleton an init needs before it can mount
anything: /dev/console (char 5:1, so the kernel can give PID 1 its stdio),
/dev, /proc, /sys, /run, /tmp (1777) and /mnt.

Shared libraries are resolved by the binary's own dynamic loader (the ELF
PT_INTERP, run as `<loader> --list FILE`, what ldd does), so the guest sees
the libraries at the same paths as the host. Libraries loaded with dlopen()
are not visible that way: pass them with --file.

The output is byte-for-byte reproducible: entries sorted by path, every mtime
0 (or $SOURCE_DATE_EPOCH), uid/gid 0, modes fixed by the rules above, inode
numbers assigned in order. Uses the Python standard library only.
"""

import argparse
import os
import re
import stat
import struct
import subprocess
import sys
import tempfile

NEWC_MAGIC = b"070701"
PT_INTERP = 3


class BuildError(Exception):
    pass


class Entry:
    """One archive member. `data` is file content or a symlink target."""

    def __init__(self, path, mode, data=b"", rdev=(0, 0), origin=""):
        self.path = path
        self.mode = mode
        self.data = data
        self.rdev = rdev
        self.origin = origin  # what asked for it, for conflict messages

    def same_as(self, other):
        return (self.mode, self.data, self.rdev) == (other.mode, other.data, other.rdev)


def guest_path(dest, what):
    if not dest.startswith("/"):
        raise BuildError(f"{what}: guest path '{dest}' must be absolute")
    parts = [p for p in dest.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise BuildError(f"{what}: guest path '{dest}' must name a file below / without '..'")
    return "/" + "/".join(parts)


def read_source(src, what):
    try:
        with open(src, "rb") as f:
            return f.read()
    except OSError as e:
        raise BuildError(f"{what}: read {src}: {e.strerror}") from None


def elf_interpreter(data, src):
    """PT_INTERP of a 64-bit little-endian ELF, None when static or not ELF."""
    if data[:4] != b"\x7fELF":
        return None
    if data[4] != 2 or data[5] != 1:
        raise BuildError(f"{src}: only 64-bit little-endian ELF binaries are supported")
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        off = phoff + i * phentsize
        p_type, = struct.unpack_from("<I", data, off)
        if p_type == PT_INTERP:
            p_offset, = struct.unpack_from("<Q", data, off + 0x08)
            p_filesz, = struct.unpack_from("<Q", data, off + 0x20)
            return data[p_offset:p_offset + p_filesz].rstrip(b"\0").decode()
    return None


LIST_LINE = re.compile(r"^\s*(\S+)(?:\s+=>\s+(\S+|not found))?\s+\(0x[0-9a-f]+\)\s*$")
LIST_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found\s*$")


def shared_libraries(src, interp):
    """Host paths of the loader and every library `src` needs."""
    # LD_LIBRARY_PATH, LD_PRELOAD...: the guest's loader sees none of them.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LD_")}
    try:
        out = subprocess.run([interp, "--list", src], env=env, capture_output=True,
                             text=True, check=False)
    except OSError as e:
        raise BuildError(f"resolve libraries of {src}: run loader {interp}: {e.strerror}") from None
    if out.returncode != 0:
        raise BuildError(f"resolve libraries of {src}: {interp} --list exited "
                         f"{out.returncode}: {out.stderr.strip() or out.stdout.strip()}")
    libs = {interp}
    missing = []
    for line in out.stdout.splitlines():
        if LIST_NOT_FOUND.match(line):
            missing.append(line.split()[0])
            continue
        m = LIST_LINE.match(line)
        if not m:
            continue
        name, resolved = m.group(1), m.group(2)
        if resolved is None:
            # The loader itself (absolute) or the vDSO (linux-vdso.so.1).
            if name.startswith("/"):
                libs.add(name)
        elif resolved != "not found":
            libs.add(resolved)
    if missing:
        raise BuildError(f"resolve libraries of {src}: not found on this host: {', '.join(missing)}")
    return sorted(libs)


def stripped(src, what):
    """Content of `src` without symbols and debug info (the file is untouched)."""
    with tempfile.TemporaryDirectory(prefix="ember-strip.") as tmp:
        out = os.path.join(tmp, "stripped")
        try:
            r = subprocess.run(["strip", "--strip-all", "-o", out, src], capture_output=True, text=True,
                               check=False)
        except OSError as e:
            raise BuildError(f"{what}: run strip: {e.strerror} (install binutils, or pass --no-strip)") from None
        if r.returncode != 0:
            raise BuildError(f"{what}: strip {src}: {r.stderr.strip()}")
        return read_source(out, what)


class Archive:
    def __init__(self):
        self.entries = {}

    def add(self, entry):
        old = self.entries.get(entry.path)
        if old is not None:
            if old.same_as(entry):
                return
            raise BuildError(f"{entry.path}: added twice with different content "
                             f"({old.origin} and {entry.origin})")
        self.entries[entry.path] = entry

    def add_dir(self, path, mode=0o755, origin="skeleton"):
        self.add(Entry(path, stat.S_IFDIR | mode, origin=origin))

    def add_binary(self, src, dest, origin, strip):
        data = read_source(src, origin)
        if strip and data[:4] == b"\x7fELF":
            data = stripped(src, origin)
        self.add(Entry(dest, stat.S_IFREG | 0o755, data, origin=origin))
        interp = elf_interpreter(data, src)
        if interp is None:
            return
        for lib in shared_libraries(src, interp):
            # The guest sees each library at the path the loader found it at;
            # symlinks are followed so the archive holds regular files only.
            self.add(Entry(guest_path(lib, origin), stat.S_IFREG | 0o755,
                           read_source(os.path.realpath(lib), origin),
                           origin=f"library of {src}"))

    def add_file(self, src, dest, origin):
        data = read_source(src, origin)
        executable = os.stat(src).st_mode & stat.S_IXUSR
        self.add(Entry(dest, stat.S_IFREG | (0o755 if executable else 0o644), data, origin=origin))

    def complete_parents(self):
        for path in list(self.entries):
            parent = os.path.dirname(path)
            while parent != "/":
                existing = self.entries.get(parent)
                if existing is None:
                    self.add_dir(parent, origin=f"parent of {path}")
                elif not stat.S_ISDIR(existing.mode):
                    raise BuildError(f"{path}: parent {parent} is not a directory ({existing.origin})")
                parent = os.path.dirname(parent)

    def serialize(self, mtime):
        out = bytearray()
        ino = 1
        for path in sorted(self.entries):
            e = self.entries[path]
            nlink = 2 if stat.S_ISDIR(e.mode) else 1
            out += newc_header(ino, e.mode, nlink, mtime, len(e.data), e.rdev, path[1:])
            out += e.data
            out += b"\0" * (-len(e.data) % 4)
            ino += 1
        out += newc_header(0, 0, 1, 0, 0, (0, 0), "TRAILER!!!")
        out += b"\0" * (-len(out) % 512)
        return bytes(out)


def newc_header(ino, mode, nlink, mtime, size, rdev, name):
    # newc: magic, then 13 eight-digit hex fields (ino, mode, uid, gid, nlink,
    # mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize,
    # check), then the NUL-terminated name padded to a multiple of 4.
    name_bytes = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, nlink, mtime, size, 0, 0, rdev[0], rdev[1], len(name_bytes), 0)
    header = NEWC_MAGIC + b"".join(b"%08x" % f for f in fields) + name_bytes
    return header + b"\0" * (-len(header) % 4)


def split_pair(value, what, default_dest=None):
    src, sep, dest = value.partition(":")
    if not src:
        raise BuildError(f"{what} '{value}': missing source")
    if not sep:
        if default_dest is None:
            raise BuildError(f"{what} '{value}': expected SRC:DEST")
        dest = default_dest(src)
    return src, guest_path(dest, f"{what} {value}")


def build(args):
    archive = Archive()
    for d in ("/dev", "/proc", "/sys", "/run", "/mnt"):
        archive.add_dir(d)
    archive.add_dir("/tmp", 0o1777)
    archive.add(Entry("/dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1), origin="skeleton"))

    strip = not args.no_strip
    archive.add_binary(args.init, "/init", f"--init {args.init}", strip)
    for value in args.bin:
        src, dest = split_pair(value, "--bin", lambda s: "/bin/" + os.path.basename(s))
        archive.add_binary(src, dest, f"--bin {value}", strip)
    for value in args.file:
        src, dest = split_pair(value, "--file")
        archive.add_file(src, dest, f"--file {value}")
    for value in args.dir:
        archive.add_dir(guest_path(value, f"--dir {value}"), origin=f"--dir {value}")
    for value in args.symlink:
        dest, sep, target = value.partition(":")
        if not sep or not target:
            raise BuildError(f"--symlink '{value}': expected DEST:TARGET")
        archive.add(Entry(guest_path(dest, f"--symlink {value}"), stat.S_IFLNK | 0o777,
                          target.encode(), origin=f"--symlink {value}"))
    archive.complete_parents()

    mtime = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    data = archive.serialize(mtime)

    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".initramfs.", dir=out_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, args.out)
    except BaseException:
        os.unlink(tmp)
        raise
    if args.list:
        for path in sorted(archive.entries):
            e = archive.entries[path]
            print(f"{stat.filemode(e.mode)} {len(e.data):>9} {path}")
    print(f"build-initramfs: wrote {args.out}: {len(archive.entries)} entries, {len(data)} bytes",
          file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--init", required=True)
    parser.add_argument("--bin", action="append", default=[])
    parser.add_argument("--file", action="append", default=[])
    parser.add_argument("--dir", action="append", default=[])
    parser.add_argument("--symlink", action="append", default=[])
    parser.add_argument("--out", required=True)
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--no-strip", action="store_true")
    args = parser.parse_args()
    try:
        build(args)
    except BuildError as e:
        print(f"build-initramfs: error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
