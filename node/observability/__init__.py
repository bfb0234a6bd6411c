"""Observability: Prometheus metrics and the InfluxDB exporter."""
