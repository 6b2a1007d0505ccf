"""Glue between the CLI and the publisher: what ``run`` does around a sweep, and ``edgebench-agent publish``.

Failures to reach the broker are never errors for ``run``: the measurement succeeded and every result is in
the local store and (space permitting) the spool, so ``run`` prints one line and exits 0. ``publish``
exists to deliver, so it exits non-zero when something remains unsent.
"""

from __future__ import annotations

import shutil
import sys
import textwrap
from collections.abc import Callable

from edgebench.agent.errors import EdgebenchError
from edgebench.agent.publish.config import PublishConfig
from edgebench.agent.publish.publisher import Publisher
from edgebench.agent.publish.spool import PutResult, Spool


def print_wrapped(text: str, indent: str = "") -> None:
    """A sentence for a person: wrapped at words to the terminal (never a number or path split)."""
    width = max(40, shutil.get_terminal_size().columns - 1)
    print(
        textwrap.fill(
            text,
            width,
            initial_indent=indent,
            subsequent_indent=indent,
            break_long_words=False,
            break_on_hyphens=False,
        )
    )


def _stderr_warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def summary_line(pub: Publisher) -> str:
    """The one line a user reads after a run: delivered and confirmed, or where the results wait and why."""
    cfg = pub.config
    counts = pub.spool.counts()
    confirm = pub.by_collector
    parts = []
    unreachable = f"broker unreachable ({pub.last_error or 'no connection'})"
    if not pub.ever_connected and not counts["queued"]:
        parts.append(unreachable)
    elif pub.ever_connected and (pub.published or not counts["queued"]):
        done = f"published {pub.published} results to {cfg.broker}"
        if confirm and pub.confirmed:
            done += f", {pub.confirmed} confirmed stored by the collector"
        parts.append(done)
    if counts["queued"]:
        kept = (
            f"{counts['queued']} results kept in the spool ({pub.spool.path}); they are sent on the next run "
            f"or with `edgebench-agent publish`"
        )
        if not pub.ever_connected:
            parts.append(f"{unreachable}: {kept}")
        elif not pub.connected:
            parts.append(f"connection to {cfg.broker} lost ({pub.last_error or 'no connection'}): {kept}")
        elif pub.held_reasons:
            parts.append(f"broker {cfg.broker} is busy ({', '.join(pub.held_reasons)}): {kept}")
        else:
            parts.append(f"broker {cfg.broker} did not acknowledge everything in time: {kept}")
    if counts["sent"] and confirm:
        parts.append(
            f"{counts['sent']} results await the collector's receipt (kept in the spool and sent again after "
            f"{cfg.resend_after_s:g} s without one; is edgebench-collector running?)"
        )
    if counts["refused"]:
        reasons = sorted({r.split(":", 1)[0] for r in pub.refused.values() if r}) or ["earlier sessions"]
        parts.append(
            f"{counts['refused']} results refused ({'; '.join(reasons)}): "
            f"`edgebench-agent publish --list-refused`, then `--retry-refused` or `--drop-refused`"
        )
    overflow = pub.not_spooled or [key for key, _, _ in pub.spool.overflow()]
    if overflow:
        parts.append(
            f"{len(overflow)} results did not fit in the full spool and are only in the local store "
            f"(`edgebench-agent publish` queues them as the spool empties)"
        )
    return "; ".join(parts)


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
        self.publisher.spool_result(doc, force=not stored, only_copy=not stored)
        self.publisher.pump()

    def finish(self, timeout_s: float) -> str:
        try:
            self.publisher.set_status("online")
            self.publisher.flush(timeout_s)
            return summary_line(self.publisher)
        finally:
            self.publisher.close()
            self.spool.close()


def list_refused(spool: Spool) -> int:
    """``publish --list-refused``: one line per refused result (key, size, reason)."""
    rows = spool.refused()
    if not rows:
        print(f"no refused results in the spool {spool.path}")
        return 0
    for msg in rows:  # the key and size, then the reason
        print(f"{msg.key}  {len(msg.payload)} bytes")
        print_wrapped(msg.reason or "", indent="  ")
    print_wrapped(
        f"{len(rows)} refused results; `--retry-refused` queues them again, `--drop-refused` deletes them "
        f"from the spool (they stay in the local results store)"
    )
    return 0


def requeue_overflow(spool: Spool, publisher: Publisher) -> tuple[int, int]:
    """Queue results that once did not fit in the full spool, from the local store, as room allows.

    Returns (queued, still waiting)."""
    waiting = spool.overflow()
    room = spool.max_messages - spool.count()
    if not waiting or room <= 0:
        return 0, len(waiting)
    from edgebench.agent.results.store import ResultStore

    wanted: dict[str, set[int]] = {}
    for _, run_id, seq in waiting[:room]:
        wanted.setdefault(run_id, set()).add(seq)
    queued, gone = 0, []
    with ResultStore() as store:
        for run_id, seqs in wanted.items():
            found = set()
            for doc in store.documents(run_id):
                if doc.seq in seqs:
                    found.add(doc.seq)
                    put = publisher.spool_result(doc, force=True)
                    if put is PutResult.QUEUED:
                        queued += 1
                    else:  # already spooled, or a reused key (warned): nothing more to wait for
                        spool.forget_overflow([f"{run_id}:{doc.seq}"])
            gone += [f"{run_id}:{seq}" for seq in seqs - found]
    if gone:  # deleted from the store since: nothing left to send
        spool.forget_overflow(gone)
        _stderr_warn(f"{len(gone)} results that did not fit in the spool are no longer in the local store")
    return queued, len(spool.overflow())


def publish_command(
    config: PublishConfig,
    run: str | None,
    timeout_s: float,
    warn: Callable[[str], None] = _stderr_warn,
    *,
    show_refused: bool = False,
    retry_refused: bool = False,
    drop_refused: bool = False,
) -> int:
    """``edgebench-agent publish``: optionally re-queue a stored run, send the spool, report. Returns the
    exit code: 0 when nothing waits to be sent, nothing is refused and nothing is left outside the spool
    (results awaiting only the collector's receipt are reported, not an error: they are re-sent later)."""
    if show_refused:
        with Spool(config.spool_path, config.max_messages) as spool:
            return list_refused(spool)
    if not config.enabled:
        where = config.source or "no config file"
        raise EdgebenchError(
            f"no MQTT broker configured ({where}): set [mqtt] host in /etc/edgebench/agent.toml, "
            f"pass --config or --broker, or set EDGEBENCH_MQTT_HOST"
        )
    with Spool(config.spool_path, config.max_messages) as spool:
        pub = Publisher(config, spool, warn=warn)
        if drop_refused:
            dropped = [m.id for m in spool.refused()]
            spool.remove(*dropped)
            print(
                f"dropped {len(dropped)} refused results from the spool (the local store keeps them, "
                f"unless they were measured with --no-store)"
            )
        if retry_refused:
            print(f"queued {spool.retry_refused()} refused results again")
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
        overflow_queued, _ = requeue_overflow(spool, pub)
        if overflow_queued:
            print(f"queued {overflow_queued} results that had not fitted in the spool")
        counts = spool.counts()
        if not (counts["queued"] + counts["sent"] + counts["refused"]) and not spool.overflow():
            print(f"nothing to publish (spool {spool.path} is empty)")
            return 0
        try:
            pub.start()
            pub.flush(timeout_s)
            # room freed by this flush: more of the overflow fits now
            while requeue_overflow(spool, pub)[0]:
                pub.flush(timeout_s)
        finally:
            pub.close()
        print_wrapped(summary_line(pub))
        counts = spool.counts()
        return 0 if not (counts["queued"] or counts["refused"] or spool.overflow()) else 1
