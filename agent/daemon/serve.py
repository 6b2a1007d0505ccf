"""``edgebench-agent serve``: take campaign jobs from the broker and run them, one at a time.

The daemon keeps a persistent MQTT session (its own client id, ``<client_id>-jobs``), so jobs sent while
the device is off or unreachable wait at the broker. Each job message is written to the SQLite queue
before it is acknowledged; admitted jobs run one after another, each in a worker process
(``agent/daemon/worker.py``), and every change of state is published retained on the job's state topic
(``agent/daemon/jobs.py``). A job found ``running`` at start-up is the one the daemon died during: it is
reported ``interrupted`` and the queue goes on.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import platform
import queue as queue_mod
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from edgebench.agent.daemon.jobs import (
    CancelMessage,
    JobMessage,
    JobState,
    admit,
    job_topic,
    name_problem,
    parse_message,
    state_topic,
)
from edgebench.agent.daemon.queue import JobQueue, QueuedJob
from edgebench.agent.errors import EdgebenchError, require
from edgebench.agent.publish.config import PublishConfig

STARTUP_GRACE_S = 120.0
"""Time a worker may take beyond the job budget (imports, model load, export on first use)."""


def log(event: str, **fields: Any) -> None:
    """One line per event on stderr (the journal on a device)."""
    detail = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
    print(f"edgebench-agent serve: {event} {detail}".rstrip(), file=sys.stderr, flush=True)


_LIBC = None
if sys.platform.startswith("linux"):
    with contextlib.suppress(OSError):
        _LIBC = ctypes.CDLL(None, use_errno=True)  # loaded here: a forked child only calls into it


def _die_with(parent: int):  # type: ignore[no-untyped-def]
    """A pre-exec hook for the worker: SIGKILL it when the daemon dies (``PR_SET_PDEATHSIG``), and exit
    at once if the daemon is already gone (it died between fork and here)."""

    def hook() -> None:
        if _LIBC is not None:
            _LIBC.prctl(1, signal.SIGKILL)
        if os.getppid() != parent:
            os._exit(1)

    return hook


class Worker:
    """The process running the current job, and a thread turning its stdout lines into events."""

    def __init__(self, job: QueuedJob, config_path: str | None, device_class: str) -> None:
        self.job = job
        self.started = time.monotonic()
        self.events: queue_mod.Queue[dict[str, Any]] = queue_mod.Queue()
        self.cancelled = False
        args = [sys.executable, "-m", "edgebench.agent.daemon.worker"]
        if config_path:
            args.append(config_path)
        env = {**os.environ, "EDGEBENCH_SERVING_CLASS": device_class, "HF_HUB_OFFLINE": "1"}
        self.proc = subprocess.Popen(
            args,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=_die_with(os.getpid()) if _LIBC is not None else None,
        )
        assert self.proc.stdin is not None
        self.proc.stdin.write(job.spec or "")
        self.proc.stdin.close()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.events.put(json.loads(line))
        self.events.put({"event": "exit"})

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Daemon:
    def __init__(self, agent: PublishConfig, config_path: str | None) -> None:
        if not agent.enabled:
            raise EdgebenchError(
                "serve takes jobs from the MQTT broker: set [mqtt] host in the agent config (or --broker)"
            )
        from edgebench.agent.paths import data_dir
        from edgebench.agent.trackers.sysinfo import detect_device_class, read_device_model

        self.agent = agent
        self.config_path = config_path
        self.limits = agent.daemon
        self.queue = JobQueue(
            Path(self.limits.queue_path) if self.limits.queue_path else data_dir() / "jobs.sqlite"
        )
        self.device_class = detect_device_class(read_device_model(), platform.machine())
        self.inbox: queue_mod.Queue[Any] = queue_mod.Queue()
        self.worker: Worker | None = None
        self.client: Any = None
        self.resync = threading.Event()
        """Set on every (re)connection: the main loop re-sends the latest job states (published while
        the broker was away, or before a restart) and the status."""
        self.stop_event = threading.Event()

    # --- MQTT -------------------------------------------------------------------------------------------
    def connect(self) -> None:
        mqtt = require("paho.mqtt.client", "mqtt", "edgebench-agent serve")
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        cfg = self.agent
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"{cfg.client_id}-jobs",
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        client.on_connect = self._on_connect
        client.on_message = lambda c, u, message: self.inbox.put(message)
        client.will_set(
            cfg.status_topic(), self._status("offline", reason="connection lost", stamped=False), 1, True
        )
        if cfg.username:
            client.username_pw_set(cfg.username, cfg.password)
        if cfg.tls:
            client.tls_set(ca_certs=cfg.ca_file, certfile=cfg.cert_file, keyfile=cfg.key_file)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = cfg.session_expiry_s
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client = client
        try:
            client.connect(
                cfg.broker_host, cfg.port, keepalive=cfg.keepalive, clean_start=False, properties=props
            )
        except (OSError, ValueError) as exc:
            log("broker_unreachable", broker=cfg.broker, reason=str(exc) or type(exc).__name__)
            client.connect_async(
                cfg.broker_host, cfg.port, keepalive=cfg.keepalive, clean_start=False, properties=props
            )
        client.loop_start()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            log("broker_refused", reason=str(reason_code))
            return
        cfg = self.agent
        client.subscribe([(job_topic(cfg.fleet, cfg.host), 1), (job_topic(cfg.fleet), 1)])
        # The status first, from here: a timer run's "offline" may be the retained status until now,
        # and a controller selecting devices must see this daemon as soon as it says it is connected.
        self.publish_status()
        self.resync.set()  # the job states follow from the main loop
        log("connected", broker=cfg.broker, session_present=getattr(flags, "session_present", None))

    def _status(
        self, state: str, run_id: str | None = None, reason: str | None = None, stamped: bool = True
    ) -> bytes:
        import edgebench.agent as agent_pkg
        from edgebench.agent.publish.status import status_payload

        return status_payload(
            state,
            self.agent.host,
            self.agent.fleet,
            agent_pkg.__version__,
            run_id,
            reason,
            stamped=stamped,
            device_class=self.device_class,
            jobs=True,
        )

    def publish_status(self) -> None:
        running = self.worker is not None
        self.client.publish(
            self.agent.status_topic(), self._status("running" if running else "online"), 1, True
        )

    def publish_state(self, job: QueuedJob, **extra: Any) -> None:
        """Stamped with the time the job entered its state (a running job's progress: now), so a state
        re-sent by :meth:`resend` is the same point to the collector, not one more."""
        settled = job.history and job.state != "running"
        entered = job.history[-1].ts_ns if settled else time.time_ns()
        state = JobState(
            job_id=job.job_id,
            campaign=job.campaign,
            fleet=self.agent.fleet,
            host=self.agent.host,
            device_class=self.device_class,
            state=job.state,  # type: ignore[arg-type]
            run_id=job.run_id,
            results=job.results,
            reason=job.reason,
            history=job.history,
            ts_ns=entered,
            **extra,
        )
        topic = state_topic(self.agent.fleet, self.agent.host, job.campaign, job.job_id)
        self.client.publish(topic, state.model_dump_json(exclude_none=True), 1, True)

    RESYNC_JOBS = 50
    STATUS_EVERY_S = 60.0
    """The status is re-published this often: a timer's ``edgebench-agent run`` on the same host leaves
    an ``offline`` status when it ends, which would hide this daemon from ``campaign start``."""

    def resend(self) -> None:
        """The newest jobs' states again (retained, idempotent): a state published while the broker was
        unreachable, or lost with a restart, reaches the controller after all."""
        for job in self.queue.latest(self.RESYNC_JOBS):
            if job.state != "running":  # the running job's next progress event says it
                self.publish_state(job)
        self.publish_status()

    # --- jobs -------------------------------------------------------------------------------------------
    def recover(self) -> None:
        """Jobs left ``running`` by a daemon that died are reported interrupted; states are re-sent."""
        for job in self.queue.in_state("running"):
            job = self.queue.set_state(job.job_id, "interrupted", reason="the daemon stopped during this job")
            log("job_interrupted", job=job.job_id, campaign=job.campaign)
            self.publish_state(job)
        for job in self.queue.in_state("queued"):
            self.publish_state(job)

    def handle(self, message: Any) -> None:
        """Act on one message; whatever happens, it is then acknowledged (a message that crashed the
        daemon would otherwise be redelivered after every restart)."""
        try:
            msg = parse_message(message.payload, self.limits)
        except EdgebenchError as exc:
            self._refuse_unreadable(message.payload, str(exc))
            return
        try:
            if isinstance(msg, CancelMessage):
                self.cancel(msg)
            else:
                self.receive(msg)
        except Exception as exc:  # a bug here must not become a redelivery loop
            log("job_error", job=msg.job_id, reason=f"{type(exc).__name__}: {exc}")
            if isinstance(msg, JobMessage) and not self.queue.get(msg.job_id):
                reason = f"internal error while admitting the job ({type(exc).__name__})"
                self.publish_state(self.queue.add(msg.job_id, msg.campaign, None, "refused", reason))

    def _refuse_unreadable(self, payload: bytes, reason: str) -> None:
        """A message that is not a valid job: refused under its campaign and id when they can be read,
        so the controller sees why; otherwise only logged."""
        job_id = campaign = None
        with contextlib.suppress(Exception):
            data = json.loads(payload[: 2**20])  # an oversized job still names itself (the broker caps size)
            job_id, campaign = data.get("job_id"), data.get("campaign")
        named = isinstance(job_id, str) and isinstance(campaign, str)
        if named and not name_problem("", job_id) and not name_problem("", campaign):
            job = self.queue.add(job_id, campaign, None, "refused", reason)
            self.publish_state(job)
        log("job_refused", job=job_id, reason=reason)

    def receive(self, msg: JobMessage) -> None:
        if self.queue.get(msg.job_id):  # redelivered (the broker re-sends unacknowledged messages)
            return
        if self.queue.queued_count() >= self.limits.max_queued:
            job = self.queue.add(
                msg.job_id, msg.campaign, None, "refused", f"queue full ({self.limits.max_queued})"
            )
        else:
            try:
                spec = admit(msg, self.limits)
            except EdgebenchError as exc:
                job = self.queue.add(msg.job_id, msg.campaign, None, "refused", str(exc))
            else:
                job = self.queue.add(msg.job_id, msg.campaign, spec.to_json(), "queued")
        log(f"job_{job.state}", job=job.job_id, campaign=job.campaign, reason=job.reason)
        self.publish_state(job)

    def cancel(self, msg: CancelMessage) -> None:
        jobs = self.queue.open_jobs(msg.campaign)
        for job in jobs:
            if msg.job_id is not None and job.job_id != msg.job_id:
                continue
            if self.worker is not None and self.worker.job.job_id == job.job_id:
                self.worker.cancelled = True
                self.worker.stop()  # its exit event finishes the job as cancelled
                continue
            job = self.queue.set_state(job.job_id, "cancelled", reason="cancelled by the controller")
            log("job_cancelled", job=job.job_id, campaign=job.campaign)
            self.publish_state(job)

    def start_next(self) -> None:
        job = self.queue.next_queued()
        if job is None:
            return
        job = self.queue.set_state(job.job_id, "running")
        self.worker = Worker(job, self.config_path, self.device_class)
        log("job_running", job=job.job_id, campaign=job.campaign)
        self.publish_state(job, progress=0.0)
        self.publish_status()

    def poll_worker(self) -> None:
        w = self.worker
        assert w is not None
        budget = self.limits.max_job_seconds + STARTUP_GRACE_S
        if time.monotonic() - w.started > budget and w.proc.poll() is None:
            w.events.put({"event": "failed", "reason": f"still running after {budget:.0f} s: stopped"})
            w.stop()
        final: dict[str, Any] | None = None
        while True:
            try:
                event = w.events.get_nowait()
            except queue_mod.Empty:
                break
            kind = event.get("event")
            if kind == "progress":
                self.publish_state(w.job, progress=event.get("progress"), detail=event.get("detail"))
            elif kind in ("done", "failed"):
                final = final or event
            elif kind == "exit":
                w.proc.wait()
                self._finish(w, final)
                return

    def _finish(self, w: Worker, final: dict[str, Any] | None) -> None:
        code = w.proc.returncode
        if final and final["event"] == "done":  # finished before the cancel arrived: its results exist
            job = self.queue.set_state(
                w.job.job_id, "done", run_id=final.get("run_id"), results=final.get("results")
            )
        elif w.cancelled:
            job = self.queue.set_state(
                w.job.job_id, "cancelled", reason="cancelled by the controller while running"
            )
        else:
            reason = (final or {}).get("reason") or f"the worker exited with code {code}"
            job = self.queue.set_state(w.job.job_id, "failed", reason=reason)
        log(f"job_{job.state}", job=job.job_id, campaign=job.campaign, run=job.run_id, reason=job.reason)
        self.worker = None
        self.publish_state(job, progress=1.0 if job.state == "done" else None)
        self.publish_status()  # the worker's own publisher leaves the status offline when it closes

    def run(self) -> None:
        """Serve until SIGTERM/SIGINT (``stop_event``)."""
        self.connect()
        self.recover()
        last_status = time.monotonic()
        try:
            while not self.stop_event.is_set():
                if self.resync.is_set():
                    self.resync.clear()
                    self.resend()
                    last_status = time.monotonic()
                elif time.monotonic() - last_status > self.STATUS_EVERY_S:
                    self.publish_status()
                    last_status = time.monotonic()
                with contextlib.suppress(queue_mod.Empty):
                    message = self.inbox.get(timeout=0.2)
                    self.handle(message)
                    self.client.ack(message.mid, message.qos)  # after the queue has it on disk
                if self.worker is not None:
                    self.poll_worker()
                if self.worker is None:
                    self.start_next()
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        if self.worker is not None:  # a stopped service: the job is interrupted, like a crash
            w = self.worker
            w.stop()
            job = self.queue.set_state(
                w.job.job_id, "interrupted", reason="the daemon was stopped during this job"
            )
            self.publish_state(job)
            self.worker = None
        if self.client is not None:
            info = self.client.publish(
                self.agent.status_topic(), self._status("offline", reason="agent stopped"), 1, True
            )
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(3)
            self.client.disconnect()
            self.client.loop_stop()
        self.queue.close()


def serve(agent: PublishConfig, config_path: str | None) -> None:
    daemon = Daemon(agent, config_path)

    def on_signal(signum: int, frame: object) -> None:
        daemon.stop_event.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log("started", host=agent.host, fleet=agent.fleet, device_class=daemon.device_class)
    daemon.run()
