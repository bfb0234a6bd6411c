"""The node software's version, reported in /v1/info and /metrics."""

VERSION = "0.1.0"
