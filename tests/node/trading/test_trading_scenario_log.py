"""An agent whose name has no profile in the scenario (any member of a real community) is
normal: its loop says so once, at info level, that it forecasts nothing; it is no warning."""

from __future__ import annotations

import logging
import time
from collections import Counter

import pytest

from ledger.store import Store
from ledger.testing import identity
from node.charters import CharterBook
from node.cli.community import default_charter, write_genesis
from node.config import NodeConfig
from node.trading.agent import AgentLoop

ADMIN = identity(98)
ME = identity(2)


def loop_named(tmp_path, name: str) -> None:
    cfg = NodeConfig(dir=tmp_path, name=name, role="consumer", household="h1", grid="g1",
                     community="test", admin=ADMIN.agent.hex(), max_power_w=3000)
    charter = default_charter("test", ADMIN.agent, "g1", interval_ms=2000,
                              epoch_us=time.time_ns() // 1000).sign(ADMIN)
    write_genesis(cfg, ME, charter, None)
    store = Store(cfg.store_path)
    try:
        book = CharterBook(store, cfg.community, ADMIN.agent, Counter())
        AgentLoop(cfg, ME.agent, store, book.charters, lambda *a, **k: None, Counter())
    finally:
        store.close()


def scenario_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.name == "node.trading.agent" and "scenario" in r.getMessage()]


def test_a_name_outside_the_scenario_is_said_once_at_info(tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="node.trading.agent")
    loop_named(tmp_path, "Greta's heat pump")
    records = scenario_records(caplog)
    assert [r.levelno for r in records] == [logging.INFO]
    text = records[0].getMessage()
    assert "Greta's heat pump" in text and "forecasts nothing" in text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("name", ["Home 1", "Community solar"])
def test_a_kit_name_says_nothing_about_the_scenario(tmp_path, caplog, name):
    caplog.set_level(logging.DEBUG, logger="node.trading.agent")
    loop_named(tmp_path, name)
    assert scenario_records(caplog) == []
