"""This agent's part in protocol 2 for each interval: sync, sign views, settle, revise, abstain.

For interval `k` (docs/protocol.md section 8), from `G_k + grace_ms` on:
1. sync: one completed anti-entropy round with every live peer that began after
   `G_k + grace_ms` (`Sync.synced_since`); the settler starts those rounds itself;
2. sign its view of `k` (every order for `k` it holds, stamped by the gate) once synced, or
   halfway through the view window at the latest (`market.plan.view_step`);
3. settle over the majority book once every settler's view is held, or at `V_k` with a
   majority, and never while a counted order is missing;
4. sign a revision when views it lacked change the book, until `F_k`;
5. abstain, logged and counted with its reason, when `F_k` passes without a book to settle.
Every decision is `market.plan.next_step`'s; this module only reads the store and signs.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from hardware.status import ErrorLevel, StatusReporter
from ledger.actions import Action
from ledger.chain import now_us
from ledger.charter import Charter
from ledger.store import Store
from market.clearing import clear
from market.plan import Step, next_step
from market.settle import settlement_payload_v2
from market.trades import Clearing
from node.trading.grid_views import IntervalBook, interval_book, view_to_sign

log = logging.getLogger(__name__)
Append = Callable[[str, dict], Awaitable[Action]]
MAX_REVISIONS = 8  # the views of `k` only ever grow, so the book settles in a few at most
ABSTAIN_KINDS = ("no-quorum", "orders-missing", "late")
KEEP_ABSTAINED = 64


class Sync(Protocol):
    """What the settler needs of gossip: has every live peer been synced since a time?"""

    def synced_since(self, since_us: int) -> bool:
        """True when every live peer completed a round that began at or after `since_us`."""

    def sync_now(self, since_us: int) -> None:
        """Start rounds with the live peers not synced since `since_us`."""


class NoPeers:
    """The `Sync` of a node alone (tests, a single-node grid): always synced."""

    def synced_since(self, since_us: int) -> bool:
        """Always True: there is no peer to wait for."""
        return True

    def sync_now(self, since_us: int) -> None:
        """Nothing to start."""


@dataclass(frozen=True, slots=True)
class Signed:
    """A settlement this agent just signed, and the clearing it came from."""

    interval: int
    payload: dict
    clearing: Clearing
    revision: int


class Settler:
    """Protocol 2's steps for one agent of one grid; `append` signs, `store` is read."""

    def __init__(
        self,
        me: bytes,
        grid: str,
        store: Store,
        charters: list[Charter],
        append: Append,
        metrics: Counter[str],
        sync: Sync | None = None,
        status: StatusReporter | None = None,
    ) -> None:
        self.me = me
        self.grid = grid
        self.store = store
        self.charters = charters
        self.append = append
        self.metrics = metrics
        self.sync: Sync = sync or NoPeers()
        self.status = status
        self.viewed: set[int] = set()
        self.settled_book: dict[int, bytes] = {}
        self.revisions: dict[int, int] = {}  # settlements signed per interval
        self.finished: set[int] = set()
        self.waiting: dict[int, str] = {}  # interval -> why it waits now
        self.abstained: dict[int, str] = {}  # interval -> why it abstained (the latest few)
        self.generation = 0  # bumped by every new action that can change a book ...
        self.listening = False  # ... once the settler listens to the journal (`attach`)
        self._books: dict[int, tuple[tuple[int, int], IntervalBook | None]] = {}

    def attach(self, listeners: list) -> None:
        """Listen to the journal's new actions: books are then re-read only when they may
        have changed (without it, every tick reads the store)."""
        listeners.append(self)
        self.listening = True

    async def on_new(self, actions: list[Action]) -> None:
        """Journal listener: a new order, view, settlement, genesis or warrant may change books
        (readings and infos cannot), so the next tick reads the store again."""
        if any(a.type != "reading" for a in actions):
            self.generation += 1

    async def _book(self, k: int) -> IntervalBook | None:
        """`k`'s book, read again only when the store took something that may change it (fork
        evidence learned from a peer reaches no listener, so the forked authors count too)."""
        cached = self._books.get(k)
        generation = (self.generation, len(self.store.forked_authors()))
        if self.listening and cached is not None and cached[0] == generation:
            return cached[1]
        loop = asyncio.get_running_loop()
        ib = await loop.run_in_executor(
            None, interval_book, self.store, self.charters, self.grid, k
        )
        self._books = {j: v for j, v in self._books.items() if j >= k - 64}
        self._books[k] = (generation, ib)
        return ib

    def recover(self, action: Action) -> None:
        """Take in one of our own earlier views or settlements (after a restart)."""
        k = action.payload["interval"]
        if action.type == "view":
            self.viewed.add(k)
        elif action.type == "settlement":
            self.revisions[k] = self.revisions.get(k, 0) + 1
            self.settled_book[k] = action.payload["book"]

    def summary(self) -> dict:
        """For /v1/info: what the settler waits for and why it abstained lately."""
        return {
            "waiting": {str(k): why for k, why in sorted(self.waiting.items())},
            "abstained": {str(k): why for k, why in sorted(self.abstained.items())},
            "abstained_total": sum(self.metrics[f"abstain:{kind}"] for kind in ABSTAIN_KINDS),
        }

    async def advance(self, k: int, settles: bool) -> list[Signed]:
        """Do what is due for `k` now (`settles`: we signed orders for `k`, so we settle it)."""
        signed: list[Signed] = []
        for _ in range(3):  # e.g. sign the view, then settle at once when every view is held
            ib = await self._book(k)
            if ib is None:  # our grid has no market in k
                self.finished.add(k)
                return signed
            now = now_us()
            d = ib.deadlines
            if now >= d.view_from_us and not self.sync.synced_since(d.view_from_us):
                self.sync.sync_now(d.view_from_us)
            step = next_step(
                now,
                d,
                synced=self.sync.synced_since(d.view_from_us),
                signed_view=k in self.viewed or self.me not in ib.context.settlers,
                settlers=list(ib.context.settlers),
                book=ib.book,
                settled_book=self.settled_book.get(k),
            )
            done = await self._do(k, step, ib, settles, signed)
            if done:
                return signed
        return signed

    async def _do(
        self, k: int, step: Step, ib: IntervalBook, settles: bool, signed: list[Signed]
    ) -> bool:
        """Perform `step`; True when nothing more is due for `k` now."""
        self.waiting.pop(k, None)
        if step.action == "wait":
            self.waiting[k] = step.reason
            return True
        if step.action == "sign-view":
            return not await self._sign_view(k, ib)
        if step.action in ("settle", "revise"):
            if not settles:  # no orders of ours for k: the view was our part
                self.finished.add(k)
                return True
            if self.revisions.get(k, 0) > MAX_REVISIONS:
                return True
            result = await self._settle(k, ib, step)
            if result is not None:
                signed.append(result)
            return result is None
        if step.action == "abstain" and settles:
            self._abstain(k, _why_not(ib))
        self.finished.add(k)
        return True

    async def _sign_view(self, k: int, ib: IntervalBook) -> bool:
        pages = view_to_sign(self.store, self.grid, k, ib.deadlines.gate_us)
        for page in pages:  # a page that fails to sign (disk full) is tried again next tick
            if now_us() > ib.deadlines.view_us:  # it would not count (a page missing: no view)
                log.warning("interval %d: my view was not signed by the view deadline", k)
                self.viewed.add(k)
                return True
            await self.append("view", page)
        self.viewed.add(k)
        self.metrics["views_signed"] += 1
        orders = sum(len(p["orders"]) for p in pages)
        log.info("interval %d: signed my view of %d order(s)", k, orders)
        return True

    async def _settle(self, k: int, ib: IntervalBook, step: Step) -> Signed | None:
        ctx, book = ib.context, ib.book
        clearing = clear(
            list(book.orders), dict(ctx.participants), ctx.rules, interval_ms=ctx.interval_ms
        )
        revision = self.revisions.get(k, 0)
        payload = settlement_payload_v2(
            self.me, k, ctx.rules.mechanism, book, clearing, ctx.settlers, revision=revision
        )
        if now_us() > ib.deadlines.final_us:
            self._abstain(k, "late: the final deadline passed while clearing")
            self.finished.add(k)
            return None
        await self.append("settlement", payload)
        self.revisions[k] = revision + 1
        self.settled_book[k] = payload["book"]
        self.metrics["settlement_revisions" if revision else "intervals_settled"] += 1
        log.info(
            "%s interval %d: %d trade(s), book of %d order(s) from %d of %d views (%s)",
            "revised" if revision else "settled",
            k,
            payload["trade_count"],
            len(book.orders),
            len(book.used),
            len(ctx.settlers),
            step.reason,
        )
        return Signed(k, payload, clearing, revision)

    def _abstain(self, k: int, reason: str) -> None:
        kind = reason.split(":", 1)[0]
        self.metrics[f"abstain:{kind}"] += 1
        self.abstained[k] = reason
        while len(self.abstained) > KEEP_ABSTAINED:
            del self.abstained[min(self.abstained)]
        message = f"interval {k}: no settlement signed: {reason}"
        if self.status is not None:
            self.status.report(ErrorLevel.SHORT, message)
        else:
            log.warning(message)


def _why_not(ib: IntervalBook) -> str:
    """Why no settlement could be signed by the final deadline, starting with its kind."""
    book, settlers = ib.book, ib.context.settlers
    if not book.quorum:
        return f"no-quorum: {len(book.used)} of {len(settlers)} settlers' views held by F_k"
    if book.missing:
        return f"orders-missing: {len(book.missing)} counted order(s) never arrived"
    return "late: the views were complete, or the node free to settle, only after F_k"
