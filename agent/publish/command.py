"""Glue between the CLI and the publisher: what ``run`` does around a sweep, and ``edgebench-agent publish``.

Failures to reach the broker are never errors for ``run``: the measurement succeeded and every result is in
the local store and (space permitting) the spool, so ``run`` prints one line and exits 0. ``publish``
exists to deliver, so it exits non-zero when something remains unsent.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from edgebench.agent.errors import EdgebenchError
from edgebench.agent.publish.config import PublishConfig
from edgebench.agent.publish.publisher import Publisher
from edgebench.agent.publish.spool import PutResult, Spool


def _stderr_warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def summary_line(pub: Publisher, remaining: int) -> str:
    """The one line a user reads after a run: delivered, or where the results wait and why."""
    cfg = pub.config
    if remaining == 0:
        line = f"published {pub.published} results to {cfg.broker}"
    else:
        kept = (
            f"{remaining} results kept in the spool ({pub.spool.path}); "
            f"they are sent on the next run or with `edgebench-agent publish`"
        )
        if pub.refused:
            reasons = sorted(set(pub.refused.values()))
            line = f"broker {cfg.broker} refused {len(pub.refused)} results ({', '.join(reasons)}): {kept}"
        elif not pub.connected:
            line = f"broker unreachable ({pub.last_error or 'no connection'}): {kept}"
        else:
            line = f"broker {cfg.broker} did not acknowledge everything in time: {kept}"
    if pub.not_spooled:
        runs = sorted({k.rsplit(":", 1)[0] for k in pub.not_spooled})
        line += (
            f"; {len(pub.not_spooled)} results did not fit in the full spool and are only in the local store "
            f"(`edgebench-agent publish --run {runs[0]}`)"
        )
    return line


class RunPublishing:
    """Publishing around one ``run``: connect first, spool + pump after each document, flush at the end."""

    def __init__(self, config: PublishConfig, warn: Callable[[str], None] = _stderr_warn) -> None:
        self.config = config
        self.spool = Spool(config.spool_path, config.max_messages)
        self.publisher = Publisher(config, self.spool, warn=warn)

    def begin(self, run_id: str) -> None:
        self.publisher.start()
        self.publisher.set_status("running", run_id)
        self.publisher.pump()  # results left over from an earlier run go first

    def on_document(self, doc, stored: bool = True) -> None:
        """Called right after a point was measured (never during timed work).

        ``stored=False`` (``--no-store``): the spool is the only copy, so its bound does not apply."""
        self.publisher.spool_result(doc, force=not stored)
        self.publisher.pump()

    def finish(self, timeout_s: float) -> str:
        try:
            self.publisher.set_status("online")
            remaining = self.publisher.flush(timeout_s)
            return summary_line(self.publisher, remaining)
        finally:
            self.publisher.close()
            self.spool.close()


def publish_command(
    config: PublishConfig, run: str | None, timeout_s: float, warn: Callable[[str], None] = _stderr_warn
) -> int:
    """``edgebench-agent publish``: optionally re-queue a stored run, send the spool, report. Returns the
    exit code (0 when the spool ends empty)."""
    if not config.enabled:
        where = config.source or "no config file"
        raise EdgebenchError(
            f"no MQTT broker configured ({where}): set [mqtt] host in /etc/edgebench/agent.toml, "
            f"pass --config or --broker, or set EDGEBENCH_MQTT_HOST"
        )
    with Spool(config.spool_path, config.max_messages) as spool:
        pub = Publisher(config, spool, warn=warn)
        queued = 0
        if run:
            from edgebench.agent.results.store import ResultStore

            with ResultStore() as store:
                run_id = store.resolve_run(run)
                for doc in store.documents(run_id):
                    # the user asked for exactly these: the spool bound does not apply
                    if pub.spool_result(doc, force=True) is PutResult.QUEUED:
                        queued += 1
            print(f"re-queued {queued} results of run {run_id}")
        before = spool.count()
        try:
            pub.start()
            remaining = pub.flush(timeout_s)
        finally:
            pub.close()
        print(summary_line(pub, remaining) if before else f"nothing to publish (spool {spool.path} is empty)")
        return 0 if remaining == 0 else 1
