#!/usr/bin/env python3
"""Pack one exported model directory into a tar file for a device, its manifest last.

Why one archive: Ansible's ``copy`` of a directory costs a round trip and a remote checksum per file, on
every run; on a slow board (or an emulated one) that is minutes for a handful of large files. The
playbook copies only the exports whose manifest the device lacks, each as one archive.

Why the manifest last: an export directory without ``edgebench-export.json`` is an interrupted one (the
agent ignores it, agent/export/cache.py), so an extraction cut short is never taken for a finished
export, and the next playbook run, not finding the manifest, copies it again.

The archive is reproducible (sorted names, zero times and owners): the same export packs to the same
bytes, and an unchanged archive is not rewritten. Prints one JSON line: {"archive": path, "changed": bool}.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import tarfile
import tempfile
from pathlib import Path

MANIFEST = "edgebench-export.json"


def pack(export: Path, archive: Path) -> bool:
    """Write ``archive`` from ``export``; False when an identical archive was already there."""
    if not (export / MANIFEST).is_file():
        raise SystemExit(f"{export} is not a finished edgebench export (no {MANIFEST})")
    files = sorted(p for p in export.rglob("*") if p.is_file() and p.name != MANIFEST)
    archive.parent.mkdir(parents=True, exist_ok=True)
    # A temporary file of its own: two playbooks packing the same export never write into one file.
    fd, name = tempfile.mkstemp(prefix=f".{archive.name}.", dir=archive.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
            for path in [*files, export / MANIFEST]:
                info = t.gettarinfo(str(path), arcname=str(path.relative_to(export)))
                info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode = 0, 0, 0, "", "", 0o644
                with path.open("rb") as f:
                    t.addfile(info, f)
        if archive.is_file() and filecmp.cmp(tmp, archive, shallow=False):
            return False
        tmp.chmod(0o644)
        tmp.replace(archive)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--export", type=Path, required=True, help="an export directory (with its manifest)")
    ap.add_argument("--out", type=Path, required=True, help="the archive to write")
    a = ap.parse_args(argv)
    changed = pack(a.export, a.out)
    print(json.dumps({"archive": str(a.out), "changed": changed}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
