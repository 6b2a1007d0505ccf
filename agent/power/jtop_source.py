"""NVIDIA Jetson through jtop (jetson-stats; extra ``edgebench[jetson]``).

``jtop().power`` is ``{'rail': {NAME: {'volt': mV, 'curr': mA, 'power': mW, 'avg': mW, 'online': …}},
'tot': {'power': mW, 'avg': mW, 'name': …}}``: the INA3221 rails and the module total (the VDD_IN /
POM_5V_IN input rail when the board has one, else the sum of rails). ``avg`` is jtop's running smoothing,
so only ``power`` is used and integrated here. jtop talks to the ``jtop.service`` over a socket that only
members of the ``jtop`` group may open; values refresh at the service interval (``jetson.interval``).
"""

from __future__ import annotations

import contextlib
import grp
import os
import time

from edgebench.agent.errors import MissingExtraError, require
from edgebench.agent.power.base import PowerSource, Reading, SourceUnavailable


def _in_jtop_group() -> bool | None:
    """True/False when the 'jtop' group exists, None when it does not."""
    try:
        g = grp.getgrnam("jtop")
    except KeyError:
        return None
    return os.geteuid() == 0 or g.gr_gid in os.getgroups()


class JtopSource(PowerSource):
    name = "jtop"
    kind = "measured"
    update_period_s = 1.0
    min_poll_period_s = 0.05

    def __init__(self, interval_s: float = 0.1) -> None:
        super().__init__()
        self.interval_s = interval_s
        self.jetson = None

    def open(self) -> None:
        try:
            jtop_mod = require("jtop", "jetson", "The jtop (Jetson) power source")
        except MissingExtraError as e:
            raise SourceUnavailable(str(e)) from None
        member = _in_jtop_group()
        jetson = jtop_mod.jtop(interval=self.interval_s)
        try:
            jetson.start()
        except jtop_mod.JtopException as e:
            hint = str(e).replace("\n", " ")
            if member is None and "install-service" not in hint:
                hint += " (no 'jtop' group: install the service with `sudo jtop --install-service`)"
            elif member is False:
                hint += " (user not in the 'jtop' group: `sudo usermod -aG jtop $USER`, then log in again)"
            raise SourceUnavailable(f"jtop: {hint}") from None
        self.jetson = jetson
        power = jetson.power
        if not power or "tot" not in power:
            self.close()
            raise SourceUnavailable("jtop reports no power rails on this board")
        rails = power.get("rail", {})
        total_name = power["tot"].get("name")
        self.rails = [total_name] if total_name else sorted(rails)
        interval = getattr(jetson, "interval", None)
        if isinstance(interval, (int, float)) and interval > 0:
            self.update_period_s = float(interval)

    def read(self) -> Reading:
        assert self.jetson is not None
        if not self.jetson.ok(spin=True):
            raise SourceUnavailable("the jtop service stopped")
        t = time.monotonic()
        power = self.jetson.power
        rails = {name: r["power"] / 1e3 for name, r in power.get("rail", {}).items() if r.get("online", True)}
        return Reading(t=t, watts=power["tot"]["power"] / 1e3, rails=rails)

    def jetson_state(self) -> tuple[str | None, bool | None]:
        """(nvpmodel name, jetson_clocks on) for the telemetry of each result."""
        if self.jetson is None:
            return None, None
        try:
            mode = self.jetson.nvpmodel
            clocks = self.jetson.jetson_clocks
        except Exception:  # jtop raises its own types when a feature is missing on a board
            return None, None
        return (str(mode) if mode is not None else None), (bool(clocks) if clocks is not None else None)

    def close(self) -> None:
        if self.jetson is not None:
            with contextlib.suppress(Exception):
                self.jetson.close()
            self.jetson = None
