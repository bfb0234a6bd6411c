"""Fixtures shared by the test modules."""

from __future__ import annotations

from pathlib import Path

import pytest
from nodedemo import Demo
from nodeproc import Cluster


@pytest.fixture
def cluster(tmp_path):
    """Real `picogrid` processes on 127.0.0.1; every one started is stopped afterwards."""
    with Cluster(tmp_path) as c:
        yield c


@pytest.fixture
def run_demo(tmp_path):
    """Start `picogrid demo` processes (`run_demo(*args)`); each one's process group and node
    processes are killed afterwards, whatever happened."""
    demos: list[Demo] = []

    def start(*args: str, data_dir: Path | None = None, sub: str = "") -> Demo:
        tmp = tmp_path / sub if sub else tmp_path
        tmp.mkdir(exist_ok=True)
        demo = Demo(tmp, *args, data_dir=data_dir)
        demos.append(demo)
        return demo

    yield start
    for demo in demos:
        demo.kill_leftovers()
