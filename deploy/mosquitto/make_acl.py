"""Render mosquitto's acl_file for an edgebench fleet.

Convention: a device's MQTT username is its host name (``host`` in ``edgebench/v1/{fleet}/{host}/…``), so
host names must be unique across fleets. Each device gets an explicit ``user`` block pinned to its own
fleet *and* host — a ``pattern …/%u/#`` rule could not pin the fleet, and would let a device publish as
itself into any fleet. Devices may only write their own topics (result, status incl. the Last Will,
power, and the states of their campaign jobs under ``jobs/``) and read only their own receipt topic (the
collector's "stored" confirmations, ``agent/publish/receipt.py``) and the job topics of their host and
fleet (``agent/daemon/jobs.py``) — never write a job: only the controller identity may, so a compromised
device cannot make the fleet run anything. The collector reads everything under ``edgebench/v1/`` and
writes only the dead-letter and receipt topics; the controller reads everything and writes only jobs and
campaign manifests.

Usage:  python deploy/mosquitto/make_acl.py --device fleetA/host1 --device fleetA/host2 > acl
        (--controller-user NAME, default "controller"; --controller-user "" for no controller)
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable

TOPIC_ROOT = "edgebench/v1"
# Topic levels and usernames: no MQTT wildcards, separators or whitespace (the ACL file is line-based).
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _check_name(kind: str, value: str) -> None:
    if not _NAME.fullmatch(value):
        raise ValueError(f"invalid {kind} {value!r}: use letters, digits, '.', '_' or '-'")


def render_acl(
    devices: Iterable[tuple[str, str]],
    collector_user: str = "collector",
    controller_user: str | None = "controller",
) -> str:
    """Return acl_file text for ``devices`` ((fleet, host) pairs) and the collector user.

    Raises ValueError on a name that could widen a rule (wildcards, '/', spaces) or on a host listed
    under two fleets (the username would be ambiguous).
    """
    _check_name("collector user", collector_user)
    if controller_user:
        _check_name("controller user", controller_user)
        if controller_user == collector_user:
            raise ValueError("the controller and the collector need separate users")
    seen: dict[str, str] = {}
    pairs: list[tuple[str, str]] = []
    for fleet, host in devices:
        _check_name("fleet", fleet)
        _check_name("host", host)
        if host in (collector_user, controller_user):
            raise ValueError(f"host {host!r} collides with the collector or controller user")
        if host in seen:
            if seen[host] != fleet:
                raise ValueError(f"host {host!r} is listed in fleets {seen[host]!r} and {fleet!r}")
            continue
        seen[host] = fleet
        pairs.append((fleet, host))

    out = [
        "# edgebench ACL — rendered by deploy/mosquitto/make_acl.py. Anything not granted is denied.",
        "# Device username = host name; each device writes only its own fleet/host subtree.",
        "",
        f"user {collector_user}",
        f"topic read {TOPIC_ROOT}/#",
        f"topic write {TOPIC_ROOT}/+/deadletter",
        f"topic write {TOPIC_ROOT}/+/+/receipt",
    ]
    if controller_user:
        out += [
            "",
            f"user {controller_user}",
            f"topic read {TOPIC_ROOT}/#",
            f"topic write {TOPIC_ROOT}/+/+/job",
            f"topic write {TOPIC_ROOT}/+/job",
            f"topic write {TOPIC_ROOT}/+/_campaign/+",
        ]
    for fleet, host in pairs:
        own = f"{TOPIC_ROOT}/{fleet}/{host}"
        out += [
            "",
            f"user {host}",
            *(f"topic write {own}/{leaf}" for leaf in ("result", "status", "power", "jobs/#")),
            f"topic read {own}/receipt",
            f"topic read {own}/job",
            f"topic read {TOPIC_ROOT}/{fleet}/job",
        ]
    return "\n".join(out) + "\n"


def _device(arg: str) -> tuple[str, str]:
    fleet, sep, host = arg.partition("/")
    if not sep or not fleet or not host or "/" in host:
        raise argparse.ArgumentTypeError(f"expected FLEET/HOST, got {arg!r}")
    return fleet, host


def main(argv: list[str] | None = None) -> int:
    """CLI: print the ACL for the devices given as FLEET/HOST."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", type=_device, action="append", default=[], metavar="FLEET/HOST")
    p.add_argument("--collector-user", default="collector")
    p.add_argument("--controller-user", default="controller")
    a = p.parse_args(argv)
    try:
        sys.stdout.write(render_acl(a.device, a.collector_user, a.controller_user or None))
    except ValueError as e:
        p.error(str(e))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
