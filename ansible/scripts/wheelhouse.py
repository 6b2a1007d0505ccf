#!/usr/bin/env python3
"""Prepare, on the Ansible controller, everything a device needs to install edgebench without internet.

Why on the controller: edge devices often sit on isolated networks, and a Pi or Jetson building wheels
would take ages. The controller builds the edgebench wheel from the checkout and collects the wheels of
its dependencies (for the device's extras, CPU architecture and Python version) into one directory;
the device then runs ``pip install --no-index --find-links <that directory>``.

Idempotent, so that a second ``ansible-playbook`` run reports nothing changed:
- the edgebench wheel is built with a fixed SOURCE_DATE_EPOCH from a clean copy of the package sources
  (not the checkout's own ``build/``, which may hold stale modules), and only replaces the existing one
  when its bytes differ;
- the dependencies are collected only when the request (extras, torch spec, platform, Python, indexes,
  edgebench's own requirements) differs from the one recorded in ``wheelhouse.json``.
The controller's pip configuration (find-links, index URLs, constraints) applies as usual: this script
only adds options. Concurrent runs for the same directory serialise on a lock file.

The directory is also packed into ``<out>.tar`` (sorted, zeroed times and owners: byte-identical for
identical wheels), which the playbook copies as one file: copying ~30 wheels one by one costs a module
round trip each, on every run.

Prints one JSON line: {"changed": bool, "wheel": "<file name>", "pip_wheel": "<file name>", "dir": "<out
dir>", "archive": "<tar>", "files": N}.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

# What setup.py/pyproject.toml need to build the wheel; everything else in the checkout stays out.
SOURCE_FILES = ("pyproject.toml", "setup.py", "README.md")
SOURCE_DIRS = ("agent", "models", "collector")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache")
# Any fixed date >= 1980 (zip's epoch) makes the archive's timestamps, hence its bytes, reproducible.
SOURCE_DATE_EPOCH = "315532800"
STAMP = "wheelhouse.json"


class WheelhouseError(RuntimeError):
    """A pip step failed; the message carries pip's last lines."""


def _run(argv: list[str], env: dict[str, str] | None = None) -> None:
    r = subprocess.run(argv, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        tail = "\n".join((r.stdout + r.stderr).strip().splitlines()[-15:])
        raise WheelhouseError(f"{' '.join(argv[:4])} … failed ({r.returncode}):\n{tail}")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def build_wheel(source: Path, out: Path) -> tuple[Path, bool]:
    """Build edgebench's wheel into ``out``; (path, changed)."""
    with tempfile.TemporaryDirectory(prefix="edgebench-wheel-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in SOURCE_FILES:
            shutil.copy2(source / name, src / name)
        for name in SOURCE_DIRS:
            shutil.copytree(source / name, src / name, ignore=IGNORE)
        dist = Path(tmp) / "dist"
        env = {**os.environ, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH}
        # With setuptools at hand, build offline; otherwise pip fetches it into an isolated build env.
        isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
        pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q"]
        _run([*pip_wheel, "-w", str(dist), str(src)], env)
        (built,) = dist.glob("edgebench-*.whl")
        target = out / built.name
        if target.is_file() and _sha256(target) == _sha256(built):
            return target, False
        for old in out.glob("edgebench-*.whl"):
            old.unlink()
        shutil.copy2(built, target)
        return target, True


def wheel_requirements(wheel: Path) -> list[str]:
    """``Requires-Dist`` lines of the built wheel: a change in edgebench's dependencies re-collects."""
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        text = z.read(meta).decode()
    lines = text.splitlines()
    return sorted(line.split(":", 1)[1].strip() for line in lines if line.startswith("Requires-Dist:"))


def collect_dependencies(wheel: Path, out: Path, args: argparse.Namespace) -> None:
    """Wheels of edgebench[extras] (+ the torch spec) for the target platform into ``out``, and pip's own
    wheel: a device whose venv has no pip (edgebench_venv_with_pip: false) installs by running it."""
    target = f"{wheel}[{args.extras}]" if args.extras else str(wheel)
    reqs = [target, *args.requirement, "pip"]
    index_opts: list[str] = []
    for url in args.extra_index_url:
        index_opts += ["--extra-index-url", url]
    if args.platform:
        # Another architecture or Python: only binary wheels can be chosen for it.
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--dest",
            str(out),
            "--only-binary=:all:",
            "--python-version",
            args.python_version,
            "--implementation",
            "cp",
        ]
        for plat in args.platform:
            cmd += ["--platform", plat]
    else:
        # This machine's own platform: sdist-only dependencies are built into wheels here.
        cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir", str(out)]
    _run([*cmd, *index_opts, *reqs])


def write_archive(out: Path) -> Path:
    """Pack the wheels into ``<out>.tar`` reproducibly (same wheels -> same bytes)."""
    archive = out.parent / f"{out.name}.tar"
    tmp = archive.with_suffix(".tar.tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(out.glob("*.whl")):
            info = tar.gettarinfo(str(path), arcname=path.name)
            info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode = 0, 0, 0, "", "", 0o644
            with path.open("rb") as f:
                tar.addfile(info, f)
    tmp.replace(archive)
    return archive


@contextlib.contextmanager
def _locked(out: Path):  # type: ignore[no-untyped-def]
    out.mkdir(parents=True, exist_ok=True)
    with (out.parent / f".{out.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", required=True, type=Path, help="the edgebench checkout")
    p.add_argument("--out", required=True, type=Path, help="wheelhouse directory (one per device class)")
    p.add_argument("--extras", default="", help="comma-separated edgebench extras, e.g. torch,mqtt")
    p.add_argument("--requirement", action="append", default=[], help="extra requirement, e.g. torch==2.13.0")
    p.add_argument("--platform", action="append", default=[], help="target wheel platform tag(s)")
    p.add_argument("--python-version", default=f"{sys.version_info.major}.{sys.version_info.minor}")
    p.add_argument("--extra-index-url", action="append", default=[])
    p.add_argument("--wheel-only", action="store_true", help="build edgebench's wheel, no dependencies")
    a = p.parse_args(argv)
    try:
        with _locked(a.out):
            wheel, changed = build_wheel(a.source, a.out)
            if not a.wheel_only:
                request = {
                    "extras": a.extras,
                    "requirements": sorted(a.requirement),
                    "platform": a.platform,
                    "python_version": a.python_version if a.platform else None,
                    "extra_index_urls": a.extra_index_url,
                    "edgebench_requires": wheel_requirements(wheel),
                    "pip_wheel": True,
                }
                stamp = a.out / STAMP
                try:
                    done = json.loads(stamp.read_text()) == request
                except (OSError, ValueError):
                    done = False
                if not done:
                    stamp.unlink(missing_ok=True)
                    for old in a.out.glob("*.whl"):  # a changed request must not leave stale wheels
                        if old != wheel:
                            old.unlink()
                    collect_dependencies(wheel, a.out, a)
                    stamp.write_text(json.dumps(request, indent=1, sort_keys=True) + "\n")
                    changed = True
            archive = a.out.parent / f"{a.out.name}.tar"
            if changed or not archive.is_file():
                write_archive(a.out)
                changed = True
    except (WheelhouseError, OSError, ValueError) as exc:
        print(f"wheelhouse: {exc}", file=sys.stderr)
        return 1
    files = len(list(a.out.glob("*.whl")))
    pip_wheels = sorted(a.out.glob("pip-*.whl"))
    print(
        json.dumps(
            {
                "changed": changed,
                "wheel": wheel.name,
                "pip_wheel": pip_wheels[-1].name if pip_wheels else None,
                "dir": str(a.out),
                "archive": str(archive),
                "files": files,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
