"""CPU cost and timing jitter of the power sampler (target: <= 1 % of one core at 10 Hz).

Runs the real PowerSampler thread for a few seconds per rate on two sources: the replay source (pure
Python) and RAPL on a fake sysfs tree (real file reads per sample, as on an x86 box). CPU cost = process
CPU time while only the sampler runs (the main thread sleeps), minus the same idle period without it.
Jitter = deviation of the sample intervals from the nominal period.

    .venv/bin/python benchmarks/sampler_overhead.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import tempfile
import time
from pathlib import Path

from edgebench.agent.power.replay import ReplaySource
from edgebench.agent.power.sampler import PowerSampler

ROOT = Path(__file__).resolve().parent.parent


def fake_rapl(root: Path) -> None:
    for zone, name in (("intel-rapl:0", "package-0"), ("intel-rapl:0:1", "dram")):
        d = root / "class" / "powercap" / zone
        d.mkdir(parents=True)
        (d / "name").write_text(name + "\n")
        (d / "energy_uj").write_text("123456789\n")
        (d / "max_energy_range_uj").write_text("262143328850\n")


def cpu_during(seconds: float, sampler: PowerSampler | None) -> tuple[float, list[float]]:
    if sampler is not None:
        sampler.start()
    c0 = time.process_time()
    time.sleep(seconds)
    c1 = time.process_time()
    if sampler is None:
        return c1 - c0, []
    sampler.stop()
    t = sampler.times
    return c1 - c0, [b - a for a, b in itertools.pairwise(t)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fake_rapl(Path(tmp))
        os.environ["EDGEBENCH_SYSFS_ROOT"] = tmp
        idle_cpu, _ = cpu_during(args.seconds, None)
        print(f"idle process CPU over {args.seconds:g} s: {idle_cpu * 1e3:.2f} ms (subtracted below)")
        print(
            f"{'source':8} {'rate':>6} {'samples':>8} {'CPU % of a core':>16} {'µs/sample':>10} "
            f"{'jitter sd ms':>13} {'max late ms':>12}"
        )
        for name in ("replay", "rapl"):
            for hz in (10.0, 100.0):
                if name == "replay":
                    source = ReplaySource(str(ROOT / "tests" / "data" / "power" / "constant_5w.csv"))
                else:
                    from edgebench.agent.power.rapl import RaplSource

                    source = RaplSource()
                    source.min_poll_period_s = 0.0  # measure the cost at 100 Hz too
                source.open()
                sampler = PowerSampler(source, 1.0 / hz)
                cpu, intervals = cpu_during(args.seconds, sampler)
                cost = max(cpu - idle_cpu, 0.0)
                n = len(intervals) + 1
                sd = statistics.pstdev(intervals) * 1e3 if len(intervals) > 1 else float("nan")
                late = max(abs(i - 1.0 / hz) for i in intervals) * 1e3 if intervals else float("nan")
                print(
                    f"{name:8} {hz:>5g}Hz {n:>8} {100 * cost / args.seconds:>15.3f}% "
                    f"{1e6 * cost / n:>10.1f} {sd:>13.3f} {late:>12.3f}"
                )


if __name__ == "__main__":
    main()
