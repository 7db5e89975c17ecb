#!/usr/bin/env python3
"""Build pyapp's wheel, and the wheel of its local dependency greet, with the
standard library only (no network, no setuptools, no uv).

    python3 build_wheel.py OUTDIR      # version from $RAIJIN_VERSION (default 0.0.0)

writes OUTDIR/pyapp-VERSION-py3-none-any.whl and
OUTDIR/greet-GREET_VERSION-py3-none-any.whl ($GREET_VERSION, default 1.0).
The archives are reproducible: the same sources give the same bytes, so an
unchanged dependency wheel has an unchanged hash.
"""
import base64
import hashlib
import os
import re
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
EPOCH = (1980, 1, 1, 0, 0, 0)


def record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "%s,sha256=%s,%d" % (name, digest, len(data))


def write_wheel(outdir, dist, version, files, requires=(), scripts=None):
    """files: archive name -> bytes. Writes the .dist-info (METADATA, WHEEL,
    entry_points.txt, RECORD) and returns the wheel's path."""
    safe = re.sub(r"[^A-Za-z0-9.]+", "_", dist)
    info = "%s-%s.dist-info" % (safe, version)
    meta = ["Metadata-Version: 2.1", "Name: " + dist, "Version: " + version,
            "Summary: raijin sample (" + dist + ")"]
    meta += ["Requires-Dist: " + r for r in requires]
    files = dict(files)
    files[info + "/METADATA"] = ("\n".join(meta) + "\n").encode()
    files[info + "/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: raijin-sample-build\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    if scripts:
        ep = "[console_scripts]\n" + "".join("%s = %s\n" % kv for kv in sorted(scripts.items()))
        files[info + "/entry_points.txt"] = ep.encode()
    record = [record_line(n, d) for n, d in sorted(files.items())]
    record.append(info + "/RECORD,,")
    files[info + "/RECORD"] = ("\n".join(record) + "\n").encode()
    path = os.path.join(outdir, "%s-%s-py3-none-any.whl" % (safe, version))
    tmp = path + ".tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for name in sorted(files):
            zi = zipfile.ZipInfo(name, EPOCH)
            zi.external_attr = 0o644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, files[name])
    os.replace(tmp, path)
    return path


def package(name, extra=None):
    files = {}
    src = os.path.join(HERE, "src", name)
    for fn in sorted(os.listdir(src)):
        if fn.endswith(".py"):
            with open(os.path.join(src, fn), "rb") as f:
                files[name + "/" + fn] = f.read()
    files.update(extra or {})
    return files


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    version = os.environ.get("RAIJIN_VERSION") or "0.0.0"
    greet_version = os.environ.get("GREET_VERSION") or "1.0"
    greet = package("greet")
    greet["greet/__init__.py"] = greet["greet/__init__.py"].replace(b'"1.0"', repr(greet_version).encode())
    print(write_wheel(outdir, "greet", greet_version, greet))
    app = package("pyapp", {"pyapp/_version.py": ("__version__ = %r\n" % version).encode()})
    print(write_wheel(outdir, "pyapp", version, app, requires=["greet"],
                      scripts={"pyapp": "pyapp.__main__:main"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
