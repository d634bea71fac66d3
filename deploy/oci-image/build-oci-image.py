#!/usr/bin/env python3
"""Builds a small OCI image offline: Debian's static busybox as a one-layer
image, written as an OCI image-layout tar that `ctr images import` takes.

    build-oci-image.py --out ember-busybox.tar [--name docker.io/library/ember-busybox:latest]
                       [--busybox /bin/busybox] [--file SRC:DEST]...

The archive holds oci-layout, index.json and blobs/sha256/{layer,config,manifest}
(OCI image-spec v1.0: image-layout.md, manifest.md, config.md). The index entry
carries `io.containerd.image.name` (containerd's import names the image from it)
and `org.opencontainers.image.ref.name`. The build is reproducible: fixed
timestamps and owners, sorted entries, so the same busybox gives the same
digests.
"""
import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

EPOCH = 0  # reproducible mtimes


def die(msg):
    print(f"build-oci-image: error: {msg}", file=sys.stderr)
    sys.exit(1)


def tar_info(name, kind, mode, size=0, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.linkname = linkname
    info.mtime = EPOCH
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def build_layer(busybox, extra_files):
    """A tar of the root filesystem, uncompressed (media type ...tar)."""
    with open(busybox, "rb") as f:
        busybox_bytes = f.read()
    applets = subprocess.run([busybox, "--list"], check=True, capture_output=True, text=True).stdout.split()
    entries = {}  # path -> (TarInfo, data)

    def add_dir(path, mode=0o755):
        entries[path] = (tar_info(path, tarfile.DIRTYPE, mode), None)

    def add_file(path, data, mode=0o644):
        entries[path] = (tar_info(path, tarfile.REGTYPE, mode, len(data)), data)

    for d in ["bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "run", "root", "var", "home"]:
        add_dir(d)
    for d in ["tmp", "var/tmp"]:
        add_dir(d, 0o1777)
    add_file("bin/busybox", busybox_bytes, 0o755)
    for applet in applets:
        if applet == "busybox":
            continue
        path = f"bin/{applet}"
        entries[path] = (tar_info(path, tarfile.SYMTYPE, 0o777, linkname="busybox"), None)
    add_file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n")
    add_file("etc/group", b"root:x:0:\nnogroup:x:65534:\n")
    add_file("etc/hostname", b"ember\n")
    for spec in extra_files:
        src, _, dest = spec.partition(":")
        if not dest:
            die(f"--file {spec}: expected SRC:DEST")
        with open(src, "rb") as f:
            data = f.read()
        dest = dest.lstrip("/")
        parts = dest.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent not in entries:
                add_dir(parent)
        add_file(dest, data, os.stat(src).st_mode & 0o7777)

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(entries):
            info, data = entries[path]
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the OCI image-layout tar to write")
    parser.add_argument("--name", default="docker.io/library/ember-busybox:latest", help="image reference")
    parser.add_argument("--busybox", default=os.environ.get("EMBER_BUSYBOX", "/bin/busybox"))
    parser.add_argument("--file", action="append", default=[], help="SRC:DEST, extra file in the image")
    args = parser.parse_args()

    if not os.access(args.busybox, os.X_OK):
        die(f"{args.busybox} not found (apt-get install busybox-static)")
    ldd = subprocess.run(["ldd", args.busybox], capture_output=True, text=True)
    if "not a dynamic executable" not in (ldd.stdout + ldd.stderr) and "statically linked" not in ldd.stdout:
        die(f"{args.busybox} is not statically linked (install busybox-static)")

    tag = args.name.rsplit(":", 1)[1] if ":" in args.name.rsplit("/", 1)[-1] else "latest"
    layer = build_layer(args.busybox, args.file)
    layer_digest = digest(layer)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"],
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "ember build-oci-image.py (busybox-static)"}],
    }
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest(config_bytes), "size": len(config_bytes)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": len(layer)}],
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest(manifest_bytes),
            "size": len(manifest_bytes),
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {
                "io.containerd.image.name": args.name,
                "org.opencontainers.image.ref.name": tag,
            },
        }],
    }
    index_bytes = json.dumps(index, sort_keys=True, separators=(",", ":")).encode()

    files = [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", index_bytes)]
    for blob in (layer, config_bytes, manifest_bytes):
        files.append(("blobs/sha256/" + hashlib.sha256(blob).hexdigest(), blob))
    tmp = args.out + ".tmp"
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ["blobs", "blobs/sha256"]:
            tar.addfile(tar_info(d, tarfile.DIRTYPE, 0o755))
        for name, data in files:
            tar.addfile(tar_info(name, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))
    os.replace(tmp, args.out)
    print(f"{args.out}: {args.name} manifest {digest(manifest_bytes)} ({len(layer)} byte layer)")


if __name__ == "__main__":
    main()
