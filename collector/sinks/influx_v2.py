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

    def delete(self, footprint: list[tuple[str, dict[str, str], int, int]]) -> None:
        """``/api/v2/delete`` per series (predicate on the measurement and every tag, inclusive range).

        InfluxDB 2.x has it; InfluxDB 3 and VictoriaMetrics do not, which surfaces as an error here and
        makes the collector report the document as partially written."""
        from datetime import datetime, timezone

        from influxdb_client.rest import ApiException

        def rfc3339(ns: int) -> str:
            seconds, rest = divmod(ns, 1_000_000_000)
            stamp = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
            return f"{stamp}.{rest:09d}Z"

        api = self._client.delete_api()
        for measurement, tags, first, last in footprint:
            predicate = " AND ".join(
                [f'_measurement="{_escape(measurement)}"']
                + [f'{k}="{_escape(v)}"' for k, v in sorted(tags.items())]
            )
            try:  # start and stop are both inclusive
                api.delete(rfc3339(first), rfc3339(last), predicate, bucket=self.bucket, org=self.org)
            except ApiException as exc:
                message = f"influx v2 delete {exc.status}: {exc.reason}"
                raise classify_status(int(exc.status or 0), message) from exc
            except Exception as exc:
                message = f"influx v2 delete {self.url}: {type(exc).__name__}: {exc}"
                raise SinkUnavailable(message[:500]) from exc

    def close(self) -> None:
        self._client.close()


def _escape(value: str) -> str:
    """A string literal of the delete predicate language: backslash and double quote escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"')
