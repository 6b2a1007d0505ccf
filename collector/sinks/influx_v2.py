"""InfluxDB 2.x / 3.x / 1.8+ and VictoriaMetrics: influxdb-client's synchronous v2 write API.

Synchronous on purpose: the consumer acks MQTT messages only after a write returned, so the client
library's own background batching/retrying (which would decouple the two) is not used; its urllib3
retries are off too, so an outage surfaces at once as :class:`SinkUnavailable` and our back-off rules.
"""

from __future__ import annotations

from edgebench.collector.sinks.base import SinkUnavailable, classify_status


class InfluxV2Sink:
    kind = "influx-v2"

    def __init__(
        self, url: str, org: str, bucket: str, token: str | None, *, timeout_s: float = 10.0
    ) -> None:
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self.url = url.rstrip("/")
        self.org = org
        self.bucket = bucket
        self._client = InfluxDBClient(
            url=self.url, token=token or "", org=org, timeout=int(timeout_s * 1000), retries=False
        )
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)

    def write(self, lines: list[str]) -> None:
        if not lines:
            return
        from influxdb_client import WritePrecision
        from influxdb_client.rest import ApiException

        try:
            self._write_api.write(
                bucket=self.bucket, org=self.org, record="\n".join(lines), write_precision=WritePrecision.NS
            )
        except ApiException as exc:
            raise classify_status(
                int(exc.status or 0),
                f"influx v2 write {exc.status}: {(exc.body or exc.reason or '')!s}"[:500],
            ) from exc
        except Exception as exc:  # urllib3 connection errors, timeouts: the server is not there
            raise SinkUnavailable(f"influx v2 {self.url}: {type(exc).__name__}: {exc}"[:500]) from exc

    def close(self) -> None:
        self._client.close()
