"""The audit of protocol-2 settlements over real signed chains: the red team's two cases.

A back-dated order and a replacement order signed after settlement with the original's
timestamp are published once the honest settlers have signed their views. The audit judges each
settlement against the views it names, so it reports no problem for an honest node, and still
catches a settlement that lies.
"""

from __future__ import annotations

from ledger.actions import Action
from ledger.charter import Charter, GridRules
from ledger.keys import Identity
from ledger.store import Store
from ledger.testing import T0, ChainSigner, identity, order_payload
from ledger.view import view_payloads
from market.book import ViewPage, book_from_views, complete_views, deadlines
from market.clearing import clear
from market.orders import Order
from market.participants import Participant
from market.settle import settlement_payload_v2
from node.audit.market import audit_market
from node.audit.views import interval_book, view_to_sign
from node.trading.interval_view import interval_state

CHARTER = Charter(
    "test",
    identity(90).agent,
    interval_ms=60_000,
    lead_ms=10_000,
    grace_ms=2_000,
    view_ms=5_000,
    final_ms=30_000,
    grids={"g1": GridRules()},
)
K = T0 // 60_000_000 + 10
D = deadlines(CHARTER, K)


def order_of(a: Action) -> Order:
    p = a.payload
    return Order(a.hash, a.author, a.seq, a.type, K, p["energy_wh"], p["price"], a.ts)


class Recorder(ChainSigner):
    """A chain signer that keeps every action it signed: its whole chain."""

    def __init__(self, ident: Identity) -> None:
        super().__init__(ident)
        self.actions: list[Action] = []

    def genesis(self, *args, **fields) -> Action:
        self.actions = [super().genesis(*args, **fields)]
        return self.actions[0]

    def next(self, *args, **kw) -> Action:
        self.actions.append(super().next(*args, **kw))
        return self.actions[-1]


class Kit:
    """Sun (community generator) and homes; each signs an order; `honest` ones then a view."""

    def __init__(self, homes: int = 2, honest: int = 3) -> None:
        self.signers = [Recorder(identity(i)) for i in range(1, homes + 2)]
        self.people = {}
        for i, s in enumerate(self.signers):
            role, house = ("generator", "community") if i == 0 else ("consumer", f"h{i}")
            s.genesis(name=house, role=role, household=house)
            self.people[s.agent] = Participant(s.agent, house, role, house, 0, 3000)
        self.orders = [
            s.next(side, order_payload(K, wh, 15000), ts=D.gate_us - 5_000_000)
            for s, (side, wh) in zip(
                self.signers, [("offer", 600)] + [("bid", 400)] * homes, strict=True
            )
        ]
        self.settlers = sorted(s.agent for s in self.signers)
        for s in self.signers[:honest]:
            for p in view_payloads(K, [o.hash for o in self.orders]):
                s.next("view", p, ts=D.gate_us + 1_000_000)

    def views(self) -> dict:
        pages = [
            ViewPage(
                a.author,
                a.seq,
                a.ts,
                K,
                a.payload["page"],
                a.payload["pages"],
                tuple(a.payload["orders"]),
            )
            for s in self.signers
            for a in s.actions
            if a.type == "view"
        ]
        return complete_views(pages, gate_us=D.gate_us, view_us=D.view_us)

    def sign_view(self, s: Recorder, held: list[int]) -> None:
        for p in view_payloads(K, [self.orders[i].hash for i in held]):
            s.next("view", p, ts=D.gate_us + 1_000_000)

    def settle(self, s: Recorder, only=None, ts=D.gate_us + 3_000_000, **change) -> Action:
        orders = [order_of(o) for o in self.orders]
        views = {a: v for a, v in self.views().items() if only is None or a in only}
        book = book_from_views(orders, views, self.settlers, gate_us=D.gate_us)
        clearing = clear(list(book.orders), self.people, GridRules(), interval_ms=60_000)
        payload = settlement_payload_v2(s.agent, K, "merit-order", book, clearing, self.settlers)
        return s.next("settlement", payload | change, ts=ts)

    def audit(self) -> dict:
        wire = {s.agent: [(a.action_bytes, a.signature) for a in s.actions] for s in self.signers}
        return audit_market(wire, [CHARTER], None, D.final_us + 10**9)


def test_back_dated_and_replacement_orders_never_frame_an_honest_settler():
    kit = Kit(homes=4, honest=3)
    honest, (replacer, back_dater) = kit.signers[:3], kit.signers[3:]
    for s in honest:
        kit.settle(s)
    # After the honest settled: a replacement with the original's timestamp (allowed: equal to
    # its predecessor's), and a new order stamped just before the gate by one who signed nothing
    # after it. Both validly signed; neither is in an honest view.
    replacer.next("bid", order_payload(K, 5000, 30000), ts=kit.orders[3].ts)
    back_dater.next("bid", order_payload(K, 3000, 30000), ts=D.gate_us - 1)
    kit.settle(replacer)
    kit.settle(back_dater)
    report = kit.audit()
    assert report["problems"] == [], report
    assert report["settlements_matching"] == 5, report["notes"]
    assert report["disputed"] == 0 and report["confirmed"] > 0


def test_a_settlement_that_lies_about_its_book_is_caught():
    kit = Kit()
    sun, h1, _ = kit.signers
    kit.settle(sun)
    kit.settle(h1, grid_import_wh=999)
    report = kit.audit()
    assert len(report["problems"]) == 1 and "differs" in report["problems"][0], report


def test_the_audit_shows_a_healed_dispute_and_a_failed_trade():
    kit = Kit(homes=4, honest=0)
    sun, b1, b2, b3, b4 = kit.signers
    for s in (sun, b1, b2):
        kit.sign_view(s, [0, 1, 2, 3, 4])
    for s in (b3, b4):
        kit.sign_view(s, [0, 1, 2, 3])  # b4's bid reached b3 and b4 late
    early = {b1.agent, b3.agent, b4.agent}
    kit.settle(b1, only=early)  # b1 settled before the views of sun and b2 arrived
    for s in (sun, b2, b3):
        kit.settle(s)
    kit.settle(b1, ts=D.gate_us + 6_000_000, revision=1)  # ...then revised over all five
    report = kit.audit()  # b4 never settles: its trade fails
    assert report["problems"] == [], report
    assert report["settlements_matching"] == 4  # each agent's latest; b4 signed none
    assert (report["confirmed"], report["failed"], report["superseded"]) == (3, 1, 1)
    healed = report["healed"]
    assert [(h["buyer"], h["energy_wh"], h["first"]) for h in healed] == [
        ("h1", 150, "disputed")
    ]  # its first said 200
    failed = [d for d in report["disputes"] if d["outcome"] == "failed"]
    assert [(d["buyer"], d["defaulter"]) for d in failed] == [("h4", "h4")]


def test_a_node_reads_the_view_to_sign_and_the_book_from_its_store():
    kit = Kit(homes=2, honest=3)
    store = Store(":memory:", None)
    try:
        for s in kit.signers:
            store.ingest([(a.action_bytes, a.signature) for a in s.actions], D.final_us)
        late = kit.signers[1].next("bid", order_payload(K, 1, 1), ts=D.gate_us + 1)
        store.ingest([(late.action_bytes, late.signature)], D.final_us)
        pages = view_to_sign(store, "g1", K, D.gate_us)
        assert pages == view_payloads(K, [o.hash for o in kit.orders])  # not the late one
        state = interval_state(store, [CHARTER], "g1", K)
        settlers, book = interval_book(store, [CHARTER], state)
        assert settlers == kit.settlers and book.quorum and not book.missing
        assert {o.hash for o in book.orders} == {o.hash for o in kit.orders}
    finally:
        store.close()
