"""Upload the edgebench data source and dashboards to a running Grafana with ``grafana-client``.

Idempotent by design, because operators re-run it after every upgrade:
- the folder, the data source and each dashboard are looked up by their fixed uid first; what exists is
  updated in place, what does not is created — a second push never creates a duplicate;
- a data source that an operator created by hand under the same *name* is adopted (updated, and given our
  uid so the dashboards find it) instead of failing with Grafana's 409 "already exists";
- a dashboard whose stored content already equals ours is left alone (no new version in its history);
- Grafana answers 412 (version-mismatch / name-exists) when someone saved the dashboard between our read
  and our write: the code is the source of truth, so we save again with ``overwrite`` and say so.
Every failure becomes one :class:`EdgebenchError` line (401 bad token, 403 missing role, unreachable URL).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from edgebench.agent.errors import EdgebenchError, require
from edgebench.collector.grafana.panels import DATASOURCE_NAME, DATASOURCE_UID

FOLDER_UID = "edgebench"
FOLDER_TITLE = "edgebench"
MESSAGE = "edgebench-collector grafana push"


@dataclass
class PushReport:
    """What happened to each object, for the CLI to print and tests to assert."""

    folder: str = ""
    datasource: str = ""
    dashboards: dict[str, str] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [f"folder {FOLDER_UID}: {self.folder}"]
        if self.datasource:
            out.append(f"datasource {DATASOURCE_UID}: {self.datasource}")
        out += [f"dashboard {uid}: {what}" for uid, what in self.dashboards.items()]
        return out


def datasource_body(
    influx_url: str,
    database: str,
    *,
    username: str | None = None,
    password: str | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    """The InfluxQL data source. InfluxDB 2.x/3.x take the token as ``Authorization: Token …`` on the
    InfluxQL compatibility endpoint (DBRP mapping); 1.x takes user and password."""
    body: dict[str, Any] = {
        "name": DATASOURCE_NAME,
        "uid": DATASOURCE_UID,
        "type": "influxdb",
        "access": "proxy",
        "url": influx_url,
        "isDefault": False,
        "jsonData": {"version": "InfluxQL", "dbName": database, "httpMode": "GET", "timeInterval": "1s"},
        "secureJsonData": {},
    }
    if username:
        body["user"] = username
    if password:
        body["secureJsonData"]["password"] = password
    if token:
        body["jsonData"]["httpHeaderName1"] = "Authorization"
        body["secureJsonData"]["httpHeaderValue1"] = f"Token {token}"
    return body


def _comparable(dash: dict[str, Any]) -> dict[str, Any]:
    """A dashboard without the keys Grafana owns (id, version), to tell 'unchanged' from 'changed'."""
    d = copy.deepcopy(dash)
    for key in ("id", "version"):
        d.pop(key, None)
    return d


class _Grafana:
    """grafana-client calls with errors translated into one-line messages."""

    def __init__(self, url: str, token: str | None, timeout: float) -> None:
        gc = require("grafana_client", "grafana", "edgebench-collector grafana push")
        self.client_mod = require("grafana_client.client", "grafana", "edgebench-collector grafana push")
        self.url = url
        try:
            self.api = gc.GrafanaApi.from_url(url, credential=token or None, timeout=timeout)
        except (ValueError, TypeError) as exc:
            raise EdgebenchError(f"invalid Grafana URL {url!r}: {exc}") from exc

    def call(self, what: str, fn, *args, missing_ok: bool = False, **kw):  # type: ignore[no-untyped-def]
        """Run one API call; None for a 404 when ``missing_ok``; EdgebenchError for everything else."""
        import niquests

        c = self.client_mod
        try:
            return fn(*args, **kw)
        except c.GrafanaUnauthorizedError as exc:
            raise EdgebenchError(
                f"Grafana at {self.url} rejected the credentials (401 Unauthorized) while trying to {what}: "
                "pass a valid service-account token with --token or GRAFANA_TOKEN"
            ) from exc
        except c.GrafanaClientError as exc:
            if exc.status_code == 404 and missing_ok:
                return None
            if exc.status_code == 403:
                raise EdgebenchError(
                    f"Grafana at {self.url} refused to {what} (403 Forbidden): the token needs the Editor "
                    "role for dashboards and folders, and Admin for the data source (or use --no-datasource)"
                ) from exc
            raise
        except c.GrafanaException as exc:
            raise EdgebenchError(f"Grafana at {self.url} failed to {what}: {exc.message}") from exc
        except niquests.exceptions.RequestException as exc:
            raise EdgebenchError(f"cannot reach Grafana at {self.url} to {what}: {exc}") from exc

    def client_error(self, exc: Exception, what: str) -> EdgebenchError:
        status = getattr(exc, "status_code", "?")
        return EdgebenchError(f"Grafana at {self.url} answered {status} while trying to {what}: {exc}")


def _ensure_folder(g: _Grafana) -> str:
    c = g.client_mod
    if g.call("read folder", g.api.folder.get_folder, FOLDER_UID, missing_ok=True) is not None:
        return "exists"
    try:
        g.call("create folder", g.api.folder.create_folder, FOLDER_TITLE, uid=FOLDER_UID)
    except c.GrafanaClientError as exc:
        raise g.client_error(exc, f"create folder {FOLDER_UID!r}") from exc
    return "created"


def _upsert_datasource(g: _Grafana, body: dict[str, Any]) -> str:
    c = g.client_mod
    ds = g.api.datasource
    try:
        if g.call("read data source", ds.get_datasource_by_uid, DATASOURCE_UID, missing_ok=True) is not None:
            g.call("update data source", ds.update_datasource_by_uid, DATASOURCE_UID, body)
            return "updated"
        by_name = g.call("read data source", ds.get_datasource_by_name, body["name"], missing_ok=True)
        if by_name is not None:
            g.call("update data source", ds.update_datasource_by_uid, by_name["uid"], body)
            return f"adopted (was uid {by_name['uid']!r}, same name)"
        g.call("create data source", ds.create_datasource, body)
        return "created"
    except c.GrafanaClientError as exc:
        raise g.client_error(exc, f"save data source {DATASOURCE_UID!r}") from exc


def _save_dashboard(g: _Grafana, dash: dict[str, Any]) -> str:
    c = g.client_mod
    uid = dash["uid"]
    what = f"save dashboard {uid!r}"
    existing = g.call("read dashboard", g.api.dashboard.get_dashboard, uid, missing_ok=True)
    payload: dict[str, Any] = {
        "dashboard": {**dash, "id": None},
        "folderUid": FOLDER_UID,
        "overwrite": False,
        "message": MESSAGE,
    }
    if existing is not None:
        stored = existing.get("dashboard", {})
        meta = existing.get("meta", {})
        if _comparable(stored) == _comparable(dash) and meta.get("folderUid", FOLDER_UID) == FOLDER_UID:
            return "unchanged"
        payload["dashboard"]["id"] = stored.get("id")
        payload["dashboard"]["version"] = stored.get("version")
    try:
        g.call(what, g.api.dashboard.update_dashboard, payload)
        return "updated" if existing is not None else "created"
    except c.GrafanaClientError as exc:
        if exc.status_code != 412:
            raise g.client_error(exc, what) from exc
        reason = exc.response.get("status", "") if isinstance(exc.response, dict) else ""
    payload["overwrite"] = True
    try:
        g.call(what, g.api.dashboard.update_dashboard, payload)
    except c.GrafanaClientError as exc:
        raise g.client_error(exc, what) from exc
    return f"overwritten ({reason or 'precondition failed'}: changed in Grafana since it was read)"


def push(
    url: str,
    token: str | None,
    dashboards: dict[str, dict[str, Any]],
    datasource: dict[str, Any] | None,
    *,
    timeout: float = 10.0,
) -> PushReport:
    """Create or update folder, data source (unless None) and dashboards; see the module docstring."""
    g = _Grafana(url, token, timeout)
    report = PushReport()
    report.folder = _ensure_folder(g)
    if datasource is not None:
        report.datasource = _upsert_datasource(g, datasource)
    for dash in dashboards.values():
        report.dashboards[dash["uid"]] = _save_dashboard(g, dash)
    return report
