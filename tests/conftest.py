"""Fixtures shared by the test modules."""

from __future__ import annotations

import pytest
from nodeproc import Cluster


@pytest.fixture
def cluster(tmp_path):
    """Real `picogrid` processes on 127.0.0.1; every one started is stopped afterwards."""
    with Cluster(tmp_path) as c:
        yield c
