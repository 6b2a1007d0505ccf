"""InfluxQL over HTTP ``GET /query`` (1.x natively; 2.x/3.x through the v1 compatibility API): what the
dashboards run, so checks and campaign reports read the database exactly as Grafana does."""

from __future__ import annotations

import json

from edgebench.agent.errors import EdgebenchError


def influxql_runner(url: str, database: str, *, username=None, password=None, token=None, timeout=10.0):  # type: ignore[no-untyped-def]
    """``GET /query`` (InfluxQL; on 2.x/3.x through the v1 compatibility API) -> JSON; raises with the
    server's message on HTTP or statement errors."""
    import urllib.error
    import urllib.parse
    import urllib.request

    def run(q: str) -> dict:
        params = {"db": database, "q": q, "epoch": "ms"}
        if username:
            params |= {"u": username, "p": password or ""}
        req = urllib.request.Request(f"{url.rstrip('/')}/query?{urllib.parse.urlencode(params)}")
        if token:
            req.add_header("Authorization", f"Token {token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                doc = json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"HTTP {exc.code}: {exc.read()[:300].decode(errors='replace')}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise EdgebenchError(f"cannot reach InfluxDB at {url}: {exc}") from exc
        errors = [doc.get("error")] + [r.get("error") for r in doc.get("results", [])]
        if any(errors):
            raise RuntimeError("; ".join(e for e in errors if e))
        return doc

    return run
