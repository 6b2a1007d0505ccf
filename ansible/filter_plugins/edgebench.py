"""Filters for the edgebench playbook."""

from __future__ import annotations

import re

# The install locations the shipped units and configs name; everything else (/usr/bin, /run, ...) is
# the system's and stays where it is.
_OWN_PATHS = re.compile(r"(?<![\w/.-])(/(?:opt|etc|var/lib|var/cache|var/log)/edgebench[\w.-]*)")


def edgebench_prefixed(text: str, prefix: str) -> str:
    """``text`` with edgebench's own absolute paths moved under ``prefix`` (no-op for an empty prefix).

    Why: deploy/systemd/ holds the units exactly as installed on a device; a test (or a staged image
    build) installs into a temporary root, where the units must point at the files actually there.
    """
    if not prefix:
        return text
    return _OWN_PATHS.sub(lambda m: prefix.rstrip("/") + m.group(1), text)


class FilterModule:
    """Ansible's filter plugin entry point."""

    def filters(self) -> dict:
        return {"edgebench_prefixed": edgebench_prefixed}
