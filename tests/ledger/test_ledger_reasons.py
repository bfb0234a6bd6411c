"""Every reason code, as `Store.ingest` reports it for a whole batch (and counts it)."""

from __future__ import annotations

import pytest

from ledger import codec
from ledger.actions import sign_action
from ledger.charter import GridRules
from ledger.errors import REASONS
from ledger.membrane import Membrane
from ledger.store import Store
from ledger.testing import T0, ChainSigner, identity, order_payload, reading_payload, wire_items

NOW = T0 + 10**12
LIMITS = GridRules(max_order_wh=10_000, max_price=100_000, max_power_w=20_000)


def scenarios() -> dict[str, tuple[list, list]]:
    """reason -> (context actions, the `(action_bytes, signature)` that must get that reason)."""
    alice = ChainSigner(identity(1))
    g = alice.genesis()
    a1 = alice.next()
    bad_bytes = a1.action_bytes[:-1]  # truncated
    six = codec.encode([1, alice.agent, 0, None, T0, "genesis"])
    not_genesis = codec.encode([1, alice.agent, 0, None, T0, "bid", order_payload()])
    big = sign_action(alice.identity, 2, a1.hash, a1.ts, "reading", reading_payload(sensor=""))
    big_body = big.action_bytes.replace(b"\xa6sensor\xa0", b"\xa6sensor\xda\x40\x00" + b"x" * 16384)
    mallory = ChainSigner(identity(2))
    m = [mallory.genesis(), mallory.next()]
    m_rival = mallory.at(m[0])
    stranger = ChainSigner(identity(5))
    stranger.genesis()  # signed, never sent: 64 of its actions wait, the next ones are not held
    early = [stranger.next() for _ in range(66)]
    return {
        "bad-encoding": ([], [(bad_bytes, a1.signature), (six, alice.identity.sign(six))]),
        "bad-signature": ([], [(g.action_bytes, identity(3).sign(g.action_bytes))]),
        "bad-link": (
            [g],
            wire_items([sign_action(alice.identity, 1, bytes(32), T0, "bid", order_payload())]),
        ),
        "bad-seq": ([], [(not_genesis, alice.identity.sign(not_genesis))]),
        "bad-time": (
            [g, a1],
            wire_items(
                [
                    sign_action(alice.identity, 2, a1.hash, a1.ts - 1, "bid", order_payload()),
                    sign_action(
                        alice.identity, 2, a1.hash, NOW + 121_000_000, "bid", order_payload()
                    ),
                ]
            ),
        ),
        "bad-payload": ([g], wire_items([alice.at(g, "bid", order_payload(energy_wh=0))])),
        "too-large": ([g, a1], [(big_body, alice.identity.sign(big_body))]),
        "wrong-community": ([], wire_items([ChainSigner(identity(4)).genesis("other")])),
        "forked-author": (m + [m_rival], wire_items([mallory.next()])),
        "over-limit": (
            [g, a1],
            wire_items(
                [
                    alice.at(a1, "offer", order_payload(energy_wh=LIMITS.max_order_wh + 1)),
                    alice.at(a1, "bid", order_payload(price=LIMITS.max_price + 1)),
                    ChainSigner(identity(5)).genesis(max_power_w=LIMITS.max_power_w + 1),
                ]
            ),
        ),
        "pending-full": (early[:64], wire_items(early[64:])),
    }


SCENARIOS = scenarios()


def test_every_reason_has_a_scenario():
    assert set(SCENARIOS) == set(REASONS)


@pytest.mark.parametrize("reason", sorted(SCENARIOS))
def test_reason(reason, tmp_path):
    context, items = SCENARIOS[reason]
    store = Store(tmp_path / "n.sqlite3", Membrane("test"), lambda grid, k: LIMITS)
    assert store.ingest(wire_items(context), NOW).rejected == []
    before = (store.count(), store.pending_count(), store.heads())
    result = store.ingest(items, NOW)
    assert result.rejected == [(i, reason) for i in range(len(items))]
    assert result.summary()["rejected"] == [[i, reason] for i in range(len(items))]
    assert store.rejected_by_reason[reason] == len(items)
    assert (store.count(), store.pending_count(), store.heads()) == before  # nothing stored
    store.close()
