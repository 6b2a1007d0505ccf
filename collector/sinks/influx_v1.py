"""InfluxDB 1.x before 1.8: ``POST {url}/write?db=DB&precision=ns`` with line protocol (stdlib HTTP).

1.6/1.7 have no ``/api/v2/write`` (404), so influxdb-client's write API cannot be used; the lines come
from ``points.document_to_lines``. Credentials go in a Basic auth header, never in the logged URL.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request

from edgebench.collector.sinks.base import SinkUnavailable, classify_status


class InfluxV1Sink:
    kind = "influx-v1"

    def __init__(
        self,
        url: str,
        database: str,
        *,
        retention_policy: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.timeout_s = timeout_s
        params = {"db": database, "precision": "ns"}
        if retention_policy:
            params["rp"] = retention_policy
        self._write_url = f"{self.url}/write?{urllib.parse.urlencode(params)}"
        self._headers = {"Content-Type": "text/plain; charset=utf-8"}
        if username:
            token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"

    def _request(self, url: str, body: bytes, form: bool = False) -> tuple[int, bytes]:
        headers = self._headers
        if form:
            headers = {**headers, "Content-Type": "application/x-www-form-urlencoded"}
        req = urllib.request.Request(url, data=body, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (TimeoutError, OSError, urllib.error.URLError) as exc:
            raise SinkUnavailable(f"influx v1 {self.url}: {exc}") from exc

    def ensure_database(self) -> None:
        """``CREATE DATABASE`` (a no-op when it exists) so a fresh server works without manual setup."""
        q = urllib.parse.urlencode({"q": f'CREATE DATABASE "{self.database}"'})
        status, body = self._request(f"{self.url}/query?{q}", b"")
        if status != 200:
            raise classify_status(status, f"CREATE DATABASE failed ({status}): {body[:200]!r}")

    def write(self, lines: list[str]) -> None:
        if not lines:
            return
        status, body = self._request(self._write_url, "\n".join(lines).encode())
        if status == 204:
            return
        try:
            reason = json.loads(body).get("error", "")
        except ValueError:
            reason = body[:300].decode(errors="replace")
        raise classify_status(status, f"influx v1 write {status}: {reason}"[:500])

    def delete(self, footprint: list[tuple[str, dict[str, str], int, int]]) -> None:
        """InfluxQL ``DELETE FROM m WHERE tag='v' AND time >= a AND time <= b`` per series, one request."""
        statements = []
        for measurement, tags, first, last in footprint:
            where = [f'"{_ident(k)}"={_quote(v)}' for k, v in sorted(tags.items())]
            where += [f"time >= {int(first)}", f"time <= {int(last)}"]
            statements.append(f'DELETE FROM "{_ident(measurement)}" WHERE {" AND ".join(where)}')
        body = urllib.parse.urlencode({"db": self.database, "q": ";".join(statements)}).encode()
        status, reply = self._request(f"{self.url}/query", body, form=True)
        errors = _query_errors(reply) if status == 200 else [reply[:200].decode(errors="replace")]
        if errors:
            raise classify_status(status if status != 200 else 400, f"influx v1 delete: {errors[0]}"[:500])

    def close(self) -> None:
        pass


def _ident(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', '\\"')


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _query_errors(reply: bytes) -> list[str]:
    try:
        body = json.loads(reply)
    except ValueError:
        return ["unreadable reply"]
    out = [body["error"]] if body.get("error") else []
    return out + [r["error"] for r in body.get("results", []) if r.get("error")]
