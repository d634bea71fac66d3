#!/usr/bin/env python3
"""Tests of build-initramfs.py: run it as a program, parse what it wrote."""

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
BUILDER = os.path.join(HERE, "build-initramfs.py")


def run_builder(*args, env=None):
    return subprocess.run([sys.executable, BUILDER, *args], capture_output=True, text=True,
                          env=env, check=False)


def parse_newc(data):
    """[(name, mode, uid, gid, mtime, rdevmajor, rdevminor, content)] in archive order."""
    entries = []
    pos = 0
    while True:
        if data[pos:pos + 6] != b"070701":
            raise AssertionError(f"bad newc magic at offset {pos}")
        fields = [int(data[pos + 6 + 8 * i:pos + 14 + 8 * i], 16) for i in range(13)]
        _ino, mode, uid, gid, _nlink, mtime, size, _dmaj, _dmin, rmaj, rmin, namesize, _check = fields
        name_start = pos + 110
        name = data[name_start:name_start + namesize - 1].decode()
        pos = name_start + namesize
        pos += -pos % 4
        content = data[pos:pos + size]
        pos += size
        pos += -pos % 4
        if name == "TRAILER!!!":
            return entries
        entries.append((name, mode, uid, gid, mtime, rmaj, rmin, content))


class BuildInitramfsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ember-initramfs-test.")
        self.addCleanup(shutil.rmtree, self.tmp)
        self.init = self.path("init.sh", "#!/bin/sh\necho hi\n", 0o700)
        self.conf = self.path("app.conf", "key=value\n", 0o600)

    def path(self, name, content, mode):
        p = os.path.join(self.tmp, name)
        with open(p, "w") as f:
            f.write(content)
        os.chmod(p, mode)
        return p

    def build(self, out, *extra, env=None):
        r = run_builder("--init", self.init, "--bin", "/bin/true", "--file", f"{self.conf}:/etc/app.conf",
                        "--dir", "/var/lib/app", "--symlink", "/bin/sh:true", "--out", out, *extra, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out, "rb") as f:
            return f.read()

    def test_building_twice_gives_identical_bytes(self):
        first = self.build(os.path.join(self.tmp, "a.cpio"))
        # Inputs touched and re-permissioned in between must not matter...
        os.utime(self.conf, (1, 123456789))
        os.utime(self.init, (1, 987654321))
        second = self.build(os.path.join(self.tmp, "b.cpio"))
        self.assertEqual(first, second)

    def test_entries_are_sorted_owned_by_root_with_fixed_mtime(self):
        entries = parse_newc(self.build(os.path.join(self.tmp, "a.cpio")))
        names = [e[0] for e in entries]
        self.assertEqual(names, sorted(names))
        self.assertEqual(len(names), len(set(names)))
        for name, _mode, uid, gid, mtime, *_ in entries:
            self.assertEqual((uid, gid, mtime), (0, 0, 0), name)

    def test_source_date_epoch_sets_every_mtime(self):
        env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
        entries = parse_newc(self.build(os.path.join(self.tmp, "a.cpio"), env=env))
        self.assertEqual({e[4] for e in entries}, {1700000000})

    def test_contents_modes_and_skeleton(self):
        entries = {e[0]: e for e in parse_newc(self.build(os.path.join(self.tmp, "a.cpio")))}
        init = entries["init"]
        self.assertEqual(init[7], b"#!/bin/sh\necho hi\n")
        self.assertEqual(init[1], stat.S_IFREG | 0o755)
        # 0600 on the host: deterministic 0644 in the archive.
        self.assertEqual(entries["etc/app.conf"][1], stat.S_IFREG | 0o644)
        self.assertEqual(entries["etc/app.conf"][7], b"key=value\n")
        self.assertEqual(entries["var/lib/app"][1], stat.S_IFDIR | 0o755)
        self.assertEqual(entries["var/lib"][1], stat.S_IFDIR | 0o755)
        self.assertEqual(entries["bin/sh"][1], stat.S_IFLNK | 0o777)
        self.assertEqual(entries["bin/sh"][7], b"true")
        console = entries["dev/console"]
        self.assertEqual((console[1], console[5], console[6]), (stat.S_IFCHR | 0o600, 5, 1))
        self.assertEqual(entries["tmp"][1], stat.S_IFDIR | 0o1777)
        for d in ("proc", "sys", "run", "mnt"):
            self.assertEqual(entries[d][1], stat.S_IFDIR | 0o755, d)

    def test_binary_comes_with_its_loader_and_libraries(self):
        entries = {e[0]: e for e in parse_newc(self.build(os.path.join(self.tmp, "a.cpio"), "--no-strip"))}
        with open("/bin/true", "rb") as f:
            self.assertEqual(entries["bin/true"][7], f.read())
        libc = [n for n in entries if os.path.basename(n) == "libc.so.6"]
        self.assertEqual(len(libc), 1, sorted(entries))
        with open("/" + libc[0], "rb") as f:
            self.assertEqual(entries[libc[0]][7], f.read())
        loader = [n for n in entries if os.path.basename(n).startswith("ld-linux")]
        self.assertTrue(loader, sorted(entries))
        # The loader sits where the binary's PT_INTERP says, as a regular file.
        self.assertEqual(stat.S_IFMT(entries[loader[0]][1]), stat.S_IFREG)

    def test_binaries_are_stripped_unless_asked_not_to(self):
        if not shutil.which("gcc") or not shutil.which("strip"):
            self.skipTest("gcc or strip not installed")
        src = self.path("hello.c", "int main(void) { return 0; }\n", 0o644)
        exe = os.path.join(self.tmp, "hello")
        subprocess.run(["gcc", "-g", "-o", exe, src], check=True)
        with open(exe, "rb") as f:
            original = f.read()
        self.assertIn(b".debug_info", original)
        r = run_builder("--init", exe, "--out", os.path.join(self.tmp, "s.cpio"))
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(self.tmp, "s.cpio"), "rb") as f:
            init = {e[0]: e for e in parse_newc(f.read())}["init"][7]
        self.assertNotIn(b".debug_info", init)
        self.assertLess(len(init), len(original))
        with open(exe, "rb") as f:
            self.assertEqual(f.read(), original, "the source binary was modified")
        r = run_builder("--init", exe, "--no-strip", "--out", os.path.join(self.tmp, "n.cpio"))
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(self.tmp, "n.cpio"), "rb") as f:
            self.assertEqual({e[0]: e for e in parse_newc(f.read())}["init"][7], original)

    def test_gnu_cpio_reads_the_archive(self):
        if not shutil.which("cpio"):
            self.skipTest("cpio not installed")
        out = os.path.join(self.tmp, "a.cpio")
        self.build(out)
        with open(out, "rb") as f:
            listing = subprocess.run(["cpio", "-t", "--quiet"], stdin=f, capture_output=True, text=True)
        self.assertEqual(listing.returncode, 0, listing.stderr)
        self.assertIn("etc/app.conf", listing.stdout.split())
        self.assertIn("dev/console", listing.stdout.split())

    def test_missing_input_is_an_error_naming_it(self):
        r = run_builder("--init", os.path.join(self.tmp, "nope"), "--out", os.path.join(self.tmp, "x.cpio"))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("nope", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "x.cpio")))

    def test_conflicting_destinations_are_an_error(self):
        r = run_builder("--init", self.init, "--file", f"{self.conf}:/init",
                        "--out", os.path.join(self.tmp, "x.cpio"))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("/init", r.stderr)

    def test_relative_or_escaping_destination_is_rejected(self):
        for dest in ("etc/x", "/../x"):
            r = run_builder("--init", self.init, "--file", f"{self.conf}:{dest}",
                            "--out", os.path.join(self.tmp, "x.cpio"))
            self.assertNotEqual(r.returncode, 0, dest)


if __name__ == "__main__":
    unittest.main()
