"""Run one benchmark: the application function behind ``run``, ``recipe run`` and the daemon's jobs.

Given a :class:`~edgebench.agent.runspec.RunSpec` and the agent's configuration (who this host is, where
results go), it loads the dataset, measures the sweep and stores / spools every result document as soon
as it is measured, so an interrupted sweep keeps what it has. How progress is shown is the caller's
business (a rich bar on a terminal, MQTT job states in the daemon): it passes a
:class:`~edgebench.agent.runner.Progress`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edgebench.agent.runner import Progress, RunIdentity

if TYPE_CHECKING:
    from edgebench.agent.publish.config import PublishConfig
    from edgebench.agent.results.schema import ResultDocument
    from edgebench.agent.runspec import RunSpec


@dataclass
class Measured:
    """What one benchmark produced: its documents, where they were stored, what publishing said."""

    run_id: str
    docs: list[ResultDocument] = field(default_factory=list)
    store_path: str | None = None
    publish_line: str | None = None


def run_benchmark(
    spec: RunSpec,
    agent: PublishConfig,
    progress: Progress | None = None,
    warn: Callable[[str], None] | None = None,
    run_id: str | None = None,
    on_document: Callable[[ResultDocument], None] | None = None,
) -> Measured:
    """Measure ``spec`` on this device; results carry ``agent``'s host and fleet and go to the local
    store (``spec.output.store``) and the MQTT spool (``spec.output.publish`` and a configured broker).

    ``warn`` receives publishing warnings (broker unreachable …); ``on_document`` is called after each
    result is stored and spooled. Errors in the spec or the dataset raise before anything loads."""
    from edgebench.agent.datasets.loader import load_dataset
    from edgebench.agent.results.store import ResultStore
    from edgebench.agent.runner import run_sweep
    from edgebench.agent.trackers.sysinfo import collect_sysinfo

    spec = spec.resolved()
    identity = RunIdentity(run_id=run_id or str(uuid.uuid4()), fleet=agent.fleet, host=agent.host)
    measured = Measured(identity.run_id)
    dataset = load_dataset(
        spec.dataset.name,
        limit=spec.dataset.limit,
        seed=spec.engine.seed,
        transcripts=bool({"transcribe", "stream"} & set(spec.sweep.scenarios)),  # only WER needs them
    )
    perturbation = spec.dataset.perturbation(spec.engine.seed)
    if perturbation.active:
        from edgebench.agent.datasets.perturb import perturb

        dataset = perturb(dataset, perturbation)
    publishing = None
    if spec.output.publish and agent.enabled:
        from edgebench.agent.publish.command import RunPublishing

        publishing = RunPublishing(agent, warn=warn) if warn else RunPublishing(agent)
        publishing.begin(identity.run_id)
    store = ResultStore() if spec.output.store else None
    completed = False
    try:
        for doc in run_sweep(spec, identity, dataset, lambda acc: collect_sysinfo(accelerator=acc), progress):
            if store:
                store.add(doc)  # saved as soon as measured: an interrupted sweep keeps what it has
            if publishing:  # spooled durably, then sent: between measured points
                publishing.on_document(doc, stored=store is not None)
            measured.docs.append(doc)
            if on_document:
                on_document(doc)
        completed = True
    finally:
        if store:
            store.close()
            measured.store_path = str(store.path)
        if publishing:  # interrupted or failed: don't make the user wait; the spool keeps the rest
            timeout = spec.output.publish_timeout_s
            measured.publish_line = publishing.finish(timeout if completed else min(timeout, 2))
    return measured
