"""Grafana: dashboards as code (dashboards.py, panels.py), Grafana-style query interpolation and
verification against InfluxDB (interpolate.py, verify.py), and the `edgebench-collector grafana` commands
(cli.py: build, push, check; push.py: grafana-client upload)."""
