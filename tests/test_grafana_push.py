"""``edgebench-collector grafana push`` against a local stand-in for Grafana's HTTP API.

No Grafana server is installable here, so a small threaded http.server answers the calls grafana-client
makes the way Grafana's HTTP API documents them (status codes and bodies of /api/folders,
/api/datasources, /api/dashboards/db and /api/dashboards/uid: 401 for a bad token, 403 for a viewer,
404 not found, 409 duplicate data source name, 412 version-mismatch / name-exists on a stale save) and
records every request, so the tests assert what the client really sent: idempotent updates, no
duplicates, the data source updated rather than re-created, conflicts resolved by overwrite.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import pytest

from edgebench.collector.grafana.dashboards import build_all
from edgebench.collector.grafana.panels import DATASOURCE_NAME, DATASOURCE_UID
from edgebench.collector.grafana.push import FOLDER_UID, _comparable

TOKEN = "glsa_good-token"
VIEWER = "glsa_viewer-token"
N = len(build_all())
"""Dashboards defined in code (each push creates, compares or updates every one)."""


def collector_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """The real ``edgebench-collector`` entry point in a subprocess."""
    return subprocess.run(
        [sys.executable, "-c", "from edgebench.collector.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class FakeGrafana:
    """State of the stand-in: folders, data sources and dashboards, plus the request log."""

    def __init__(self) -> None:
        self.folders: dict[str, dict[str, Any]] = {}
        self.datasources: dict[int, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self.next_id = 1
        self.concurrent_edit: set[str] = set()
        """Dashboard uids that 'someone else' saves right before our next save (-> 412)."""
        self.lock = threading.Lock()

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def calls(self, method: str, prefix: str) -> list[tuple[str, str, Any]]:
        return [r for r in self.requests if r[0] == method and r[1].startswith(prefix)]

    # -- the API ----------------------------------------------------------------------------------
    def handle(self, method: str, path: str, body: Any, auth: str) -> tuple[int, Any]:
        if auth not in (f"Bearer {TOKEN}", f"Bearer {VIEWER}"):
            return 401, {"message": "invalid API key"}
        if auth == f"Bearer {VIEWER}" and method != "GET":
            return 403, {"message": "Access denied"}
        parts = [unquote(p) for p in path.split("?")[0].strip("/").split("/")]
        if parts[:2] == ["api", "folders"]:
            return self.folder(method, parts[2:], body)
        if parts[:2] == ["api", "datasources"]:
            return self.datasource(method, parts[2:], body)
        if parts[:3] == ["api", "dashboards", "uid"] and method == "GET":
            d = self.dashboards.get(parts[3])
            if d is None:
                return 404, {"message": "Dashboard not found"}
            return 200, {
                "dashboard": d["dashboard"],
                "meta": {"folderUid": d["folderUid"], "version": d["dashboard"]["version"]},
            }
        if parts[:3] == ["api", "dashboards", "db"] and method == "POST":
            return self.save_dashboard(body)
        return 404, {"message": "Not found"}

    def folder(self, method: str, rest: list[str], body: Any) -> tuple[int, Any]:
        if method == "GET" and rest:
            f = self.folders.get(rest[0])
            return (200, f) if f else (404, {"message": "folder not found", "status": "not-found"})
        if method == "POST" and not rest:
            uid = body.get("uid")
            if uid in self.folders:
                return 409, {"message": "a folder with the same uid already exists"}
            f = {
                "id": self.new_id(),
                "uid": uid,
                "title": body["title"],
                "url": f"/dashboards/f/{uid}/",
                "version": 1,
            }
            self.folders[uid] = f
            return 200, f
        return 405, {"message": "Method not allowed"}

    def _ds_by(self, key: str, value: str) -> dict[str, Any] | None:
        return next((d for d in self.datasources.values() if d[key] == value), None)

    def datasource(self, method: str, rest: list[str], body: Any) -> tuple[int, Any]:
        if method == "GET" and len(rest) == 2 and rest[0] in ("uid", "name"):
            d = self._ds_by(rest[0], rest[1])
            return (200, d) if d else (404, {"message": "Data source not found"})
        if method == "POST" and not rest:
            if self._ds_by("name", body["name"]) or self._ds_by("uid", body.get("uid", "")):
                return 409, {"message": "data source with the same name already exists"}
            d = {**body, "id": self.new_id(), "version": 1}
            d.pop("secureJsonData", None)
            self.datasources[d["id"]] = d
            return 200, {"datasource": d, "id": d["id"], "message": "Datasource added", "name": d["name"]}
        if method == "PUT" and len(rest) == 2 and rest[0] == "uid":
            d = self._ds_by("uid", rest[1])
            if d is None:
                return 404, {"message": "Data source not found"}
            if self._ds_by("name", body["name"]) not in (None, d):
                return 409, {"message": "Datasource with same name already exists"}
            new = {**body, "id": d["id"], "version": d["version"] + 1}
            new.pop("secureJsonData", None)
            self.datasources[d["id"]] = new
            return 200, {
                "datasource": new,
                "id": d["id"],
                "message": "Datasource updated",
                "name": new["name"],
            }
        return 405, {"message": "Method not allowed"}

    def save_dashboard(self, body: dict[str, Any]) -> tuple[int, Any]:
        dash = copy.deepcopy(body["dashboard"])
        uid, overwrite = dash["uid"], body.get("overwrite", False)
        existing = self.dashboards.get(uid)
        if uid in self.concurrent_edit and existing is not None:
            self.concurrent_edit.discard(uid)
            existing["dashboard"]["version"] += 1  # someone saved it from the UI in the meantime
        if not overwrite:
            if existing is not None and dash.get("version") != existing["dashboard"]["version"]:
                return 412, {
                    "message": "The dashboard has been changed by someone else",
                    "status": "version-mismatch",
                }
            same_title = [
                u
                for u, d in self.dashboards.items()
                if u != uid
                and d["folderUid"] == body.get("folderUid")
                and d["dashboard"]["title"] == dash["title"]
            ]
            if same_title:
                return 412, {
                    "message": "A dashboard with the same name in the folder already exists",
                    "status": "name-exists",
                }
        dash["id"] = existing["dashboard"]["id"] if existing else self.new_id()
        dash["version"] = existing["dashboard"]["version"] + 1 if existing else 1
        self.dashboards[uid] = {"dashboard": dash, "folderUid": body.get("folderUid")}
        return 200, {
            "id": dash["id"],
            "uid": uid,
            "url": f"/d/{uid}/x",
            "status": "success",
            "version": dash["version"],
            "slug": "x",
        }


@pytest.fixture
def grafana() -> Iterator[tuple[FakeGrafana, str]]:
    state = FakeGrafana()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            with state.lock:
                state.requests.append((self.command, self.path, body))
                status, answer = state.handle(
                    self.command, self.path, body, self.headers.get("Authorization", "")
                )
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def push(url: str, *extra: str, token: str = TOKEN) -> subprocess.CompletedProcess:
    return collector_cli(
        "grafana",
        "push",
        "--url",
        url,
        "--token",
        token,
        "--influx-url",
        "http://influxdb:8086",
        "--database",
        "edgebench",
        *extra,
    )


def assert_matches_code(state: FakeGrafana) -> None:
    code = {d["uid"]: d for d in build_all().values()}
    assert set(state.dashboards) == set(code)
    for uid, stored in state.dashboards.items():
        assert stored["folderUid"] == FOLDER_UID
        assert _comparable(stored["dashboard"]) == _comparable(code[uid])


def test_push_creates_everything_then_second_push_changes_nothing(grafana) -> None:  # type: ignore[no-untyped-def]
    state, url = grafana
    r = push(url)
    assert r.returncode == 0, r.stderr
    assert f"folder {FOLDER_UID}: created" in r.stdout and f"datasource {DATASOURCE_UID}: created" in r.stdout
    assert r.stdout.count(": created") == N + 2, r.stdout
    assert list(state.folders) == [FOLDER_UID]
    (ds,) = state.datasources.values()
    assert (ds["uid"], ds["name"], ds["type"], ds["access"], ds["url"]) == (
        DATASOURCE_UID,
        DATASOURCE_NAME,
        "influxdb",
        "proxy",
        "http://influxdb:8086",
    )
    assert ds["jsonData"]["version"] == "InfluxQL" and ds["jsonData"]["dbName"] == "edgebench"
    assert_matches_code(state)
    assert all(d["dashboard"]["version"] == 1 for d in state.dashboards.values())
    posted = [body for _, _, body in state.calls("POST", "/api/dashboards/db")]
    assert all(b["overwrite"] is False and b["dashboard"]["id"] is None for b in posted)

    n = len(state.requests)
    r = push(url)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count(": unchanged") == N and f"datasource {DATASOURCE_UID}: updated" in r.stdout, (
        r.stdout
    )
    second = state.requests[n:]
    assert not [x for x in second if x[0] == "POST"], "a second push must create nothing"
    assert [x[1] for x in second if x[0] == "PUT"] == [f"/api/datasources/uid/{DATASOURCE_UID}"]
    assert len(state.datasources) == 1 and len(state.dashboards) == N and len(state.folders) == 1
    assert all(d["dashboard"]["version"] == 1 for d in state.dashboards.values())


def test_changed_dashboard_is_updated_in_place(grafana) -> None:  # type: ignore[no-untyped-def]
    state, url = grafana
    assert push(url).returncode == 0
    uid = "edgebench-trends"
    edited = state.dashboards[uid]["dashboard"]
    edited["title"] = "edited in the UI"
    edited["version"] += 1
    before_id = edited["id"]
    n = len(state.requests)
    r = push(url, "--no-datasource")
    assert r.returncode == 0, r.stderr
    assert f"dashboard {uid}: updated" in r.stdout and r.stdout.count(": unchanged") == N - 1, r.stdout
    assert_matches_code(state)
    stored = state.dashboards[uid]["dashboard"]
    assert stored["id"] == before_id and stored["version"] == 3
    (save,) = [b for _, _, b in state.calls("POST", "/api/dashboards/db")[N:]]
    assert (
        save["dashboard"]["id"] == before_id and save["dashboard"]["version"] == 2 and not save["overwrite"]
    )
    assert not [x for x in state.requests[n:] if "/api/datasources" in x[1]], "--no-datasource touched them"


def test_version_conflict_is_resolved_by_overwrite(grafana) -> None:  # type: ignore[no-untyped-def]
    state, url = grafana
    assert push(url).returncode == 0
    uid = "edgebench-compare"
    state.dashboards[uid]["dashboard"]["title"] = "changed"  # so the next push must save
    state.dashboards[uid]["dashboard"]["version"] += 1
    state.concurrent_edit.add(uid)  # ...and someone saves again between our read and our write
    n = len(state.requests)
    r = push(url, "--no-datasource")
    assert r.returncode == 0, r.stderr
    assert f"dashboard {uid}: overwritten (version-mismatch" in r.stdout, r.stdout
    saves = [b for m, p, b in state.requests[n:] if m == "POST" and p.startswith("/api/dashboards/db")]
    assert [b["overwrite"] for b in saves] == [False, True]
    assert len(state.dashboards) == N
    assert_matches_code(state)


def test_existing_datasource_with_same_name_is_adopted(grafana) -> None:  # type: ignore[no-untyped-def]
    state, url = grafana
    state.datasources[99] = {
        "id": 99,
        "uid": "hand-made",
        "name": DATASOURCE_NAME,
        "type": "influxdb",
        "url": "http://old:8086",
        "version": 4,
        "jsonData": {},
    }
    r = push(url)
    assert r.returncode == 0, r.stderr
    assert "adopted (was uid 'hand-made'" in r.stdout, r.stdout
    assert not state.calls("POST", "/api/datasources")
    assert [p for _, p, _ in state.calls("PUT", "/api/datasources")] == ["/api/datasources/uid/hand-made"]
    (ds,) = state.datasources.values()
    assert (ds["id"], ds["uid"], ds["url"]) == (99, DATASOURCE_UID, "http://influxdb:8086")
    r = push(url)  # now found by uid: plain update
    assert f"datasource {DATASOURCE_UID}: updated" in r.stdout and len(state.datasources) == 1


def test_bad_token_is_one_line_and_writes_nothing(grafana) -> None:  # type: ignore[no-untyped-def]
    state, url = grafana
    r = push(url, token="wrong")
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "401" in lines[0] and "--token" in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not [x for x in state.requests if x[0] != "GET"] and not state.dashboards


def test_viewer_token_is_one_line(grafana) -> None:  # type: ignore[no-untyped-def]
    state, url = grafana
    r = push(url, token=VIEWER)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "403" in lines[0] and "Editor" in lines[0], r.stderr
    assert not state.dashboards


def test_unreachable_grafana_is_one_line() -> None:
    from tests.servers import free_port

    r = collector_cli(
        "grafana",
        "push",
        "--url",
        f"http://127.0.0.1:{free_port()}",
        "--token",
        TOKEN,
        "--no-datasource",
        "--timeout",
        "2",
    )
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach Grafana" in lines[0], r.stderr
