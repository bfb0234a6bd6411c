"""Write `actions.json`: signed actions and the verdict every PicoGrid node must reach on them.

    python tests/vectors/make_vectors.py        # rewrites tests/vectors/actions.json

Deterministic (fixed seeds, fixed clock), so the file only changes when this script does; the
test suite checks that it reproduces the file byte for byte. The format is in README.md here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ledger import codec  # noqa: E402
from ledger.actions import Action, sign_action  # noqa: E402
from ledger.keys import Identity  # noqa: E402
from ledger.membrane import Binding, make_invite  # noqa: E402
from ledger.testing import (  # noqa: E402
    T0,
    ChainSigner,
    genesis_payload,
    order_payload,
    reading_payload,
    settlement_payload,
    warrant_payload,
)
from ledger.view import settlers_digest, trades_digest, view_payloads, views_bitmap  # noqa: E402

OUT = Path(__file__).with_name("actions.json")
COMMUNITY = "vectors"
NOW = T0 + 3_600_000_000  # the receiving node's clock: one hour after the chains start
# The receiving node's charter limits for grid "north" (protocol 2, charter "v": 2).
LIMITS = {
    "max_order_wh": 10_000,
    "max_price": 100_000,
    "max_capacity_wh": 50_000,
    "max_power_w": 20_000,
}


def ident(name: str) -> Identity:
    """A fixed identity per role in these vectors: seed = the name, zero-padded to 32 bytes."""
    return Identity.from_seed(name.encode().ljust(32, b"\0"))


ALICE, BOB, CAROL, MALLORY, ADMIN = (
    ident(n) for n in ("alice", "bob", "carol", "mallory", "admin")
)


def wire(a: Action) -> str:
    return a.signed.hex()


def raw(fields: list, signer: Identity) -> str:
    """Sign arbitrary fields (sign_action refuses some of what these vectors need)."""
    body = codec.encode(fields)
    return codec.encode([body, signer.sign(body)]).hex()


def raw_bytes(body: bytes, signer: Identity) -> str:
    """Sign bytes that are not canonical: the signature is good, the encoding is not."""
    return codec.encode([body, signer.sign(body)]).hex()


def vector(
    name: str,
    signed_hex: str,
    reason: str | None,
    context: list[Action] | None = None,
    *,
    outcome: str | None = None,
    open_: bool = True,
    admin: Identity | None = None,
    members: tuple[Identity, ...] = (),
    note: str = "",
) -> dict[str, Any]:
    extra = {"members": sorted(m.agent.hex() for m in members)} if members else {}
    return extra | {
        "name": name,
        "note": note,
        "signed_hex": signed_hex,
        "valid": reason is None,
        "reason": reason,
        "outcome": outcome or ("accepted" if reason is None else "rejected"),
        "context": [wire(a) for a in context or []],
        "now_us": NOW,
        "community": COMMUNITY,
        "open": open_,
        "admin": admin.agent.hex() if admin else None,
        "limits": LIMITS,
    }


def build() -> list[dict[str, Any]]:
    alice = ChainSigner(ALICE)
    g = alice.genesis(COMMUNITY, "north", name="Home 1", household="home1")
    offer = alice.next("offer", order_payload(10, 400, 15000))
    bob = ChainSigner(BOB)
    bob_g = bob.genesis(COMMUNITY, "north", name="Home 2", household="home2")
    settlement = bob.next(
        "settlement",
        settlement_payload(10, [[ALICE.agent, BOB.agent, 400, 15000, offer.hash, bytes(32)]]),
    )
    mallory = ChainSigner(MALLORY)
    m_g = mallory.genesis(COMMUNITY, "north", name="Mallory")
    m1 = mallory.next("bid", order_payload(3, 100, 30000))
    m1b = mallory.at(m_g, "offer", order_payload(3, 100, 1))
    carol = ChainSigner(CAROL)
    c_g = carol.genesis(COMMUNITY, "north", name="Carol", role="storage", capacity_wh=4000)
    invite = make_invite(ADMIN, COMMUNITY, "north", CAROL.agent)
    c_invited = sign_action(
        CAROL, 0, None, T0, "genesis", genesis_payload(COMMUNITY, "north", invite=invite)
    )
    a1 = offer  # alice's seq 1
    carol_early_signer = ChainSigner(CAROL)
    carol_early_signer.genesis(COMMUNITY, "north", name="Carol")  # signed, never sent
    carol_early = [carol_early_signer.next("bid", order_payload(i)) for i in range(1, 66)]
    ok = [
        vector("genesis", wire(g), None, note="a genesis of an open community"),
        vector("offer after genesis", wire(a1), None, [g]),
        vector(
            "bid with its predecessor's timestamp",
            wire(sign_action(ALICE, 2, a1.hash, a1.ts, "bid", order_payload(11, 1, 0))),
            None,
            [g, a1],
            note="ts equal to the predecessor's is allowed",
        ),
        vector("settlement", wire(settlement), None, [bob_g]),
        vector(
            "reading",
            wire(sign_action(ALICE, 2, a1.hash, a1.ts + 5, "reading", reading_payload(10))),
            None,
            [g, a1],
        ),
        vector(
            "warrant",
            wire(bob.at(bob_g, "warrant", warrant_payload(m1, m1b))),
            None,
            [bob_g],
            note="evidence: two different actions by one author at one seq",
        ),
        vector(
            "genesis with the admin's invite",
            wire(c_invited),
            None,
            open_=False,
            admin=ADMIN,
            note="a closed community: the invite signs [picogrid-invite, community, grid, agent]",
        ),
        vector(
            "timestamp 120 s ahead",
            wire(sign_action(ALICE, 0, None, NOW + 120_000_000, "genesis", g.payload)),
            None,
            note="exactly the future bound",
        ),
        vector(
            "pending: predecessor unknown",
            wire(sign_action(ALICE, 2, bytes([7]) * 32, a1.ts + 1, "bid", order_payload(12))),
            None,
            [g],
            outcome="pending",
            note="never rejected for an unknown predecessor alone: held until it arrives",
        ),
        vector(
            "fork",
            wire(m1b),
            None,
            [m_g, m1],
            outcome="fork",
            note="valid, and the second action at seq 1: both kept as evidence, author forked",
        ),
        vector("largest action", _sized(16384), None, [g, a1]),
    ]
    genesis_fields = [1, ALICE.agent, 0, None, T0, "genesis", dict(g.payload)]
    bad = [
        vector(
            "non-canonical integer",
            raw_bytes(
                a1.action_bytes.replace(b"\xa5price\xcd:\x98", b"\xa5price\xce\x00\x00:\x98"),
                ALICE,
            ),
            "bad-encoding",
            [g],
            note="price 15000 as uint32, validly signed: a second encoding of one value",
        ),
        vector(
            "unsorted payload keys",
            raw_bytes(_swap_first_keys(a1.action_bytes), ALICE),
            "bad-encoding",
            [g],
        ),
        vector(
            "float in the payload",
            raw_bytes(
                a1.action_bytes.replace(
                    b"\xa5price\xcd:\x98", b"\xa5price\xcb@\xcdL\x00\x00\x00\x00\x00"
                ),
                ALICE,
            ),
            "bad-encoding",
            [g],
        ),
        vector("six fields", raw(genesis_fields[:6], ALICE), "bad-encoding"),
        vector(
            "trailing bytes in the signed action",
            wire(g) + "00",
            "bad-encoding",
        ),
        vector(
            "signature of another key",
            codec.encode([g.action_bytes, BOB.sign(g.action_bytes)]).hex(),
            "bad-signature",
        ),
        vector(
            "one bit of the signature flipped",
            codec.encode([g.action_bytes, _flip(g.signature, 10)]).hex(),
            "bad-signature",
        ),
        vector(
            "genesis at seq 1",
            raw([1, ALICE.agent, 1, g.hash, T0, "genesis", dict(g.payload)], ALICE),
            "bad-seq",
        ),
        vector(
            "seq 0 that is not a genesis",
            raw([1, ALICE.agent, 0, None, T0, "bid", order_payload()], ALICE),
            "bad-seq",
        ),
        vector(
            "prev that is not the predecessor's hash",
            wire(sign_action(ALICE, 1, bytes(32), T0 + 1, "bid", order_payload())),
            "bad-link",
            [g],
        ),
        vector(
            "timestamp before the predecessor's",
            wire(sign_action(ALICE, 2, a1.hash, a1.ts - 1, "bid", order_payload())),
            "bad-time",
            [g, a1],
        ),
        vector(
            "timestamp more than 120 s ahead",
            wire(sign_action(ALICE, 0, None, NOW + 120_000_001, "genesis", g.payload)),
            "bad-time",
        ),
        vector(
            "unknown payload key",
            wire(sign_action(ALICE, 1, g.hash, T0 + 1, "bid", order_payload() | {"note": "x"})),
            "bad-payload",
            [g],
        ),
        vector(
            "zero energy",
            wire(sign_action(ALICE, 1, g.hash, T0 + 1, "offer", order_payload(energy_wh=0))),
            "bad-payload",
            [g],
        ),
        vector(
            "unknown entry type",
            wire(sign_action(ALICE, 1, g.hash, T0 + 1, "transfer", order_payload())),
            "bad-payload",
            [g],
        ),
        vector(
            "warrant naming one action twice",
            wire(bob.at(bob_g, "warrant", warrant_payload(m1, m1))),
            "bad-payload",
            [bob_g],
            note="the evidence must be two different actions (a bug Holochain shipped)",
        ),
        vector("too large", _sized(16385), "too-large", [g, a1]),
        vector(
            "genesis of another community",
            wire(ChainSigner(CAROL).genesis("elsewhere", "north")),
            "wrong-community",
        ),
        vector(
            "closed community, a member the charter kept",
            wire(c_g),
            None,
            open_=False,
            admin=ADMIN,
            members=(CAROL,),
            note="docs/protocol.md, Membership: the closing charter lists carol, so her genesis "
            "needs no invite",
        ),
        vector(
            "closed community, no invite",
            wire(c_g),
            "wrong-community",
            open_=False,
            admin=ADMIN,
        ),
        vector(
            "closed community, invite by another key",
            wire(
                sign_action(
                    CAROL,
                    0,
                    None,
                    T0,
                    "genesis",
                    genesis_payload(
                        COMMUNITY, "north", invite=make_invite(BOB, COMMUNITY, "north", CAROL.agent)
                    ),
                )
            ),
            "wrong-community",
            open_=False,
            admin=ADMIN,
        ),
        vector(
            "sensor longer than 64 characters",
            wire(sign_action(ALICE, 2, a1.hash, a1.ts + 5, "reading",
                             reading_payload(10, sensor="s" * 65))),
            "bad-payload",
            [g, a1],
            note="docs/protocol.md, Bounds: a reading's sensor is at most 64 characters",
        ),
        vector(
            "mechanism longer than 32 characters",
            wire(bob.at(bob_g, "settlement", settlement_payload(10, mechanism="m" * 33))),
            "bad-payload",
            [bob_g],
            note="docs/protocol.md, Bounds: a settlement's mechanism is 1 to 32 characters",
        ),
        vector(
            "settlement of 111 trades",
            wire(bob.at(bob_g, "settlement", settlement_payload(10, _trades(111)))),
            "bad-payload",
            [bob_g],
            note="docs/protocol.md, Bounds: at most 110 trades, though 111 fit in 16,384 bytes",
        ),
        vector(
            "a stranger past its pending bound",
            wire(carol_early[64]),
            "pending-full",
            carol_early[:64],
            note="carol's genesis never came: 64 of her actions wait, the 65th is not held; "
            "not a verdict on the action: send it again once its predecessors are held",
        ),
        vector(
            "new action of a forked author",
            wire(mallory.next("bid", order_payload(4))),
            "forked-author",
            [m_g, m1, m1b],
            note="the context forks mallory at seq 1; its seq 2 is refused",
        ),
    ]
    return ok + bad + protocol2()


def settlement_v2(trades: list, *, listed: bool = True, count: int | None = None) -> dict:
    """A protocol-2 settlement of interval 10 naming Alice's and Bob's views."""
    settlers = [ALICE.agent, BOB.agent]
    return settlement_payload(
        10,
        trades if listed else [],
        settlers=settlers_digest(settlers),
        views=views_bitmap(settlers, settlers),
        revision=0,
        trade_count=len(trades) if count is None else count,
        trades_digest=trades_digest(trades),
    )


def protocol2() -> list[dict[str, Any]]:
    """Vectors of the rules protocol version 2 adds: views, v2 settlements, limits, bindings."""
    alice = ChainSigner(ALICE)
    g = alice.genesis(COMMUNITY, "north", name="Home 1", household="home1")
    offer = alice.next("offer", order_payload(10, 400, 15000))
    trade = [ALICE.agent, BOB.agent, 400, 15000, offer.hash, bytes(32)]
    view = view_payloads(10, [offer.hash, bytes(32)])[0]
    home = Binding("consumer", "home3", 0, 3000)
    bound = make_invite(ADMIN, COMMUNITY, "north", CAROL.agent, home)

    def carol_genesis(household: str) -> Action:
        payload = genesis_payload(COMMUNITY, "north", household=household, invite=bound)
        return sign_action(CAROL, 0, None, T0, "genesis", payload)

    def alice_next(type_: str, payload: dict) -> str:
        return wire(alice.at(offer, type_, payload))

    closed = {"open_": False, "admin": ADMIN}
    return [
        vector(
            "view",
            alice_next("view", view),
            None,
            [g, offer],
            note="a settler's signed list of the order hashes it holds for interval 10",
        ),
        vector(
            "view with unsorted hashes",
            alice_next("view", view | {"orders": view["orders"][::-1]}),
            "bad-payload",
            [g, offer],
            note="hashes strictly ascending: one encoding per view",
        ),
        vector(
            "view page beyond its pages",
            alice_next("view", view | {"page": 1}),
            "bad-payload",
            [g, offer],
        ),
        vector(
            "settlement v2 listing its trades",
            alice_next("settlement", settlement_v2([trade])),
            None,
            [g, offer],
        ),
        vector(
            "settlement v2 as a digest",
            alice_next("settlement", settlement_v2([trade], listed=False)),
            None,
            [g, offer],
            note="trades left out: every node recomputes them from the named views",
        ),
        vector(
            "settlement v2 whose trades miss their digest",
            alice_next("settlement", settlement_v2([trade]) | {"trades_digest": bytes(32)}),
            "bad-payload",
            [g, offer],
        ),
        vector(
            "order over max_order_wh",
            alice_next("bid", order_payload(10, 10_001)),
            "over-limit",
            [g, offer],
        ),
        vector(
            "order over max_price",
            alice_next("bid", order_payload(10, 1, 100_001)),
            "over-limit",
            [g, offer],
        ),
        vector(
            "genesis over max_capacity_wh",
            wire(ChainSigner(BOB).genesis(COMMUNITY, "north", role="storage", capacity_wh=50_001)),
            "over-limit",
        ),
        vector(
            "genesis matching its binding invite",
            wire(carol_genesis("home3")),
            None,
            note="the invite signs [picogrid-invite-2, community, grid, agent, role, "
            "household, capacity_wh, max_power_w]",
            **closed,
        ),
        vector(
            "genesis naming another household than its invite",
            wire(carol_genesis("home1")),
            "wrong-community",
            note="the invite binds household home3",
            **closed,
        ),
    ]


def _flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 1
    return bytes(out)


def _swap_first_keys(body: bytes) -> bytes:
    """The order payload `{energy_wh, interval, price}` re-encoded as `{interval, energy_wh, ...}`."""
    energy, interval = b"\xa9energy_wh\xcd\x01\x90", b"\xa8interval\x0a"
    assert energy + interval in body, "this vector expects order_payload(10, 400, ...)"
    return body.replace(energy + interval, interval + energy)


def _trades(n: int, widths: list[int] | None = None) -> list[list]:
    """`n` trades Alice to Bob; `widths[i]` picks how wide trade i's two integers encode."""
    values = (1, 200, 1000, 2**20, 2**40)  # 1, 2, 3, 5 and 9 bytes in msgpack
    widths = widths or [0] * (2 * n)
    return [
        [ALICE.agent, BOB.agent, values[widths[2 * i]], values[widths[2 * i + 1]], bytes(32),
         bytes(32)]
        for i in range(n)
    ]


def _sized(size: int) -> str:
    """Alice's seq 2 settlement of 110 trades (the most allowed), its integers widened so its
    action bytes are exactly `size` long."""
    alice = ChainSigner(ALICE)
    alice.genesis(COMMUNITY, "north", name="Home 1", household="home1")
    a1 = alice.next("offer", order_payload(10, 400, 15000))
    widths = [0] * 220
    extra = (0, 1, 2, 4, 8)  # bytes each width adds to the narrowest

    def body() -> bytes:
        payload = settlement_payload(10, _trades(110, widths))
        return codec.encode([1, ALICE.agent, 2, a1.hash, a1.ts + 1, "settlement", payload])

    missing = size - len(body())
    for i in range(220):
        widths[i] = max(w for w in range(5) if extra[w] <= missing)
        missing -= extra[widths[i]]
    data = body()
    assert len(data) == size, (len(data), size)
    return codec.encode([data, ALICE.sign(data)]).hex()


def render() -> str:
    return json.dumps(build(), indent=1) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT} ({len(build())} vectors)")
