"""An emulated Raspberry Pi 5 as a test device: a real arm64 userland under qemu-user, reached over SSH.

- **Root filesystem**: Debian bookworm arm64 (what Raspberry Pi OS is built on) made by ``debootstrap``
  from the Debian mirror of this machine's apt sources, cached outside the checkout
  (``EDGEBENCH_TEST_CACHE``, default ``/var/cache/edgebench-tests``) and reused by later runs: it is
  built once (~3 min, ~330 MB) and never written to afterwards.
- **Each start** mounts a fresh overlay on it (the cached tree is the read-only lower layer, writes go to
  the test's temporary directory), so every test gets a pristine Pi and no state leaks between runs.
- **Execution**: binfmt_misc hands every arm64 binary to ``qemu-aarch64-static``. ``QEMU_CPU=cortex-a76``
  (a Pi 5's core; qemu's default CPU model makes OpenBLAS's float32 matmul return inf/NaN) is set for
  sshd and, through sshd's ``SetEnv``, for every SSH session.
- **Identity**, faked at the interfaces edgebench reads and nowhere else (tests/data/rpi5/README.md): a
  Pi 5 ``/proc/cpuinfo`` bind-mounted, the device tree's ``model`` under ``/sys/firmware/devicetree``, a
  ``vcgencmd`` printing recorded ``pmic_read_adc`` / ``get_throttled`` answers, and the host name.
  Emulation itself is *not* hidden: the kernel still says x86_64, which is how edgebench marks the
  results as emulated.
- **Network**: the arm64 system's own ``sshd`` runs in a network namespace whose only link is a veth
  pair to this machine (:class:`tests.ansible_env.NetnsDevice`): no route to any package index.

All mounts live in a private mount namespace of the sshd process tree (``unshare --mount``), so they
vanish with it, whatever happens to the test process.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from tests.ansible_env import NetnsDevice, _sh
from tests.persistent_cache import cache_root

DATA = Path(__file__).resolve().parent / "data"
QEMU_CPU = "cortex-a76"
HOSTNAME = "edge-pi5"
SUITE = "bookworm"
# What debootstrap installs beyond minbase: Python for Ansible and the agent's venv, sshd for Ansible to
# connect to, python3-apt for Ansible's apt module, and the agent role's system packages (the device has
# no package index, so they must already be there, as on a Raspberry Pi OS image).
PACKAGES = (
    "python3",
    "python3-venv",
    "python3-apt",
    "openssh-server",
    "ca-certificates",
    "libsndfile1",
    "powertop",
)
_RECIPE = f"debootstrap --arch=arm64 --variant=minbase {SUITE} {','.join(PACKAGES)} v1"


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (deb822 ``URIs:`` or a ``deb`` line), so debootstrap
    fetches from the same place apt-get does."""
    candidates = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in candidates:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.suffix == ".sources":
            for block in text.split("\n\n"):
                uris = re.search(r"^URIs:\s*(\S+)", block, re.M)
                suites = re.search(r"^Suites:\s*(.+)$", block, re.M)
                if uris and suites and SUITE in suites.group(1).split() and "security" not in uris.group(1):
                    return uris.group(1)
        else:
            for line in text.splitlines():
                parts = line.split()
                if len(parts) >= 3 and parts[0] == "deb" and parts[2] == SUITE:
                    return parts[1] if not parts[1].startswith("[") else parts[2]
    return "http://deb.debian.org/debian"


def ensure_binfmt() -> None:
    """qemu-aarch64 registered with binfmt_misc (mounting binfmt_misc first when needed)."""
    binfmt = Path("/proc/sys/fs/binfmt_misc")
    if not (binfmt / "register").exists():
        _sh("mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt))
    entry = binfmt / "qemu-aarch64"
    if not entry.exists() or not entry.read_text().startswith("enabled"):
        _sh("update-binfmts", "--enable", "qemu-aarch64")
    if not entry.read_text().startswith("enabled"):
        raise RuntimeError("qemu-aarch64 is not enabled in binfmt_misc (apt-get install qemu-user-static)")


def ensure_rootfs(log: Path | None = None) -> tuple[Path, float]:
    """The cached arm64 root filesystem (built now if missing): (path, seconds spent building it)."""
    key = hashlib.sha256(_RECIPE.encode()).hexdigest()[:10]
    root = cache_root() / f"rpi5-{SUITE}-arm64-{key}"
    if (root / ".edgebench-complete").is_file():
        return root, 0.0
    ensure_binfmt()
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    t0 = time.monotonic()
    argv = [
        "debootstrap",
        "--arch=arm64",
        "--variant=minbase",
        f"--include={','.join(PACKAGES)}",
        SUITE,
        str(tmp),
        debian_mirror(),
    ]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    if log is not None:
        log.write_text(r.stdout + r.stderr)
    if r.returncode != 0:
        raise RuntimeError(f"debootstrap failed ({r.returncode}): {(r.stdout + r.stderr)[-3000:]}")
    # Nothing of the build's apt state is needed at run time; the Pi has no index anyway.
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for f in (tmp / junk).glob("*"):
            if f.is_file():
                f.unlink()
    (tmp / ".edgebench-complete").write_text(_RECIPE + "\n")
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    return root, time.monotonic() - t0


class EmulatedPi(NetnsDevice):
    """The cached arm64 root filesystem, booted (so to speak) as a Raspberry Pi 5 behind SSH."""

    def __init__(self, base_dir: Path, rootfs: Path, tag: str | None = None) -> None:
        super().__init__(base_dir, tag=tag or f"pi{os.getpid() % 100000}")
        self.rootfs = rootfs
        self.overlay = self.dir / "overlay"
        self.merged = self.overlay / "merged"

    def _stage_files(self) -> Path:
        """Files the start script puts into the overlay: sshd config and keys, the Pi's identity."""
        stage = self.dir / "stage"
        shutil.rmtree(stage, ignore_errors=True)
        (stage / "ssh").mkdir(parents=True)
        host_key = self.dir / "ssh_host_ed25519_key"
        for key in (host_key, self.key):
            if not key.exists():
                _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgebench-test", "-f", str(key))
        shutil.copy2(host_key, stage / "ssh" / "host_key")
        (stage / "ssh" / "authorized_keys").write_text(self.key.with_suffix(".pub").read_text())
        self.known_hosts.write_text(f"{self.device_ip} {host_key.with_suffix('.pub').read_text()}")
        (stage / "ssh" / "sshd_config").write_text(
            f"ListenAddress {self.device_ip}\nPort 22\nHostKey /etc/edgebench-test/ssh/host_key\n"
            "PidFile /run/sshd-edgebench.pid\nAuthorizedKeysFile /etc/edgebench-test/ssh/authorized_keys\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            "Subsystem sftp internal-sftp\n"
            # qemu-user reads QEMU_CPU from each emulated process's environment: every session needs it.
            f"SetEnv QEMU_CPU={QEMU_CPU}\n"
        )
        return stage

    def _start_script(self, stage: Path) -> str:
        m, ident = self.merged, DATA / "rpi5"
        upper, work = self.overlay / "upper", self.overlay / "work"
        return "\n".join(
            [
                "set -eu",
                f"hostname {HOSTNAME}",
                f"mount -t overlay overlay -o lowerdir={self.rootfs},upperdir={upper},workdir={work} {m}",
                f"mount -t proc proc {m}/proc",
                f"mount --bind /sys {m}/sys",
                f"mount --bind /dev {m}/dev",
                f"mount --bind /dev/pts {m}/dev/pts",
                f"mount -t tmpfs tmpfs {m}/run",
                f"mount -t tmpfs tmpfs {m}/tmp",
                f"mount --bind {ident / 'cpuinfo'} {m}/proc/cpuinfo",
                f"mount -t tmpfs tmpfs {m}/sys/firmware",
                f"mkdir -p {m}/sys/firmware/devicetree/base",
                f"cp {ident / 'model'} {m}/sys/firmware/devicetree/base/model",
                f"mkdir -p {m}/run/sshd {m}/etc/edgebench-test {m}/usr/share/edgebench-test",
                f"cp -r {stage / 'ssh'} {m}/etc/edgebench-test/",
                f"chmod 600 {m}/etc/edgebench-test/ssh/host_key",
                f"cp {ident / 'vcgencmd'} {m}/usr/bin/vcgencmd",
                f"cp {DATA / 'power' / 'pmic_read_adc.txt'} {m}/usr/share/edgebench-test/",
                f"echo {HOSTNAME} > {m}/etc/hostname",
                f"printf '127.0.0.1 localhost\\n127.0.1.1 {HOSTNAME}\\n' > {m}/etc/hosts",
                f"exec env -i QEMU_CPU={QEMU_CPU} PATH=/usr/sbin:/usr/bin:/sbin:/bin "
                f"chroot {m} /usr/sbin/sshd -D -e -f /etc/edgebench-test/ssh/sshd_config",
            ]
        )

    def start(self, timeout: float = 60.0) -> EmulatedPi:
        ensure_binfmt()
        self._link()
        for d in ("upper", "work", "merged"):
            (self.overlay / d).mkdir(parents=True, exist_ok=True)
        stage = self._stage_files()
        script = self.dir / "start.sh"
        script.write_text(self._start_script(stage) + "\n")
        # A private mount and UTS namespace: the overlay and binds vanish with sshd's process tree.
        unshare = ["unshare", "--mount", "--uts", "--propagation", "private"]
        self._start_sshd(["ip", "netns", "exec", self.ns, *unshare, "sh", str(script)], timeout)
        return self
