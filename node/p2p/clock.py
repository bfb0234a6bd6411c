"""How far this node's clock is off from its peers', and what the node does about it.

Every gossip round asks one peer for its heads; the answer carries the peer's clock
(`PicoGrid-Time`, microseconds; the HTTP `Date` header from a peer that does not send it). With
the moments the request left and the answer came back, the peer's reading is compared with the
midpoint of the round trip:

    offset of our clock against that peer = (sent + received) / 2 - peer's time

Our offset is the median of the latest sample of each peer heard from in the last
`SAMPLE_TTL_S` (samples of round trips over `MAX_RTT_US` are dropped); positive means our clock is
ahead. Our clock counts as off only once at least half the peers we know were compared and more
than half of those find it off the same way: one peer with a wrong clock, or one that lies,
cannot make a right clock look off.

Beyond `tolerance_s` (config `[node] clock_tolerance_s`, default 30 s, well below the 120 s a
receiver allows ahead) the node refuses to sign orders, which its peers would reject (ahead) or
which would be for intervals already closed (behind), and says so: /v1/info, /metrics, a log line
at most every `REPORT_EVERY_S`, and the status LED's clock code. Our own actions that peers
reject as `bad-time`, and peers' actions we reject as `bad-time` (by author), are counted.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from hardware.status import ErrorLevel, StatusReporter
from node.devices.hardware import Throttle
from node.errors import NotSigned, UserError
from node.p2p.peers import PeerTable

log = logging.getLogger(__name__)

TIME_HEADER = "PicoGrid-Time"
DEFAULT_TOLERANCE_S = 30.0
SAMPLE_TTL_S = 300.0
MAX_RTT_US = 2_000_000
REPORT_EVERY_S = 60.0
MAX_AUTHORS = 64  # authors whose bad-time actions are counted by name
ORDER_TYPES = ("offer", "bid")
CLOCK_OFF = "clock-off"  # NotSigned reasons
CLOCK_BEHIND_CHAIN = "clock-behind-chain"


@dataclass(frozen=True, slots=True)
class ClockSample:
    """One comparison with a peer: our clock minus the peer's, the round trip, when (monotonic)."""

    offset_us: int
    rtt_us: int
    at: float


def peer_time_us(headers) -> tuple[int, int] | None:
    """(the peer's clock in microseconds, its uncertainty) from an answer's headers, or None."""
    raw = headers.get(TIME_HEADER)
    if raw is not None:
        try:
            return int(raw), 0
        except ValueError:
            return None
    date = headers.get("Date")
    if date is None:
        return None
    try:  # whole seconds, truncated: the middle of that second, half a second either way
        return int(parsedate_to_datetime(date).timestamp() * 1_000_000) + 500_000, 500_000
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


class ClockWatch:
    """Our clock's offset from the peers' (median), the refusal to sign orders beyond the
    tolerance, and the counts of actions rejected as `bad-time`."""

    def __init__(self, peers: PeerTable, metrics: Counter[str],
                 tolerance_s: float = DEFAULT_TOLERANCE_S, mono=time.monotonic) -> None:
        self.peers = peers
        self.metrics = metrics
        self.tolerance_us = int(tolerance_s * 1_000_000)
        self.mono = mono
        self.status: StatusReporter | None = None  # set once the hardware has started
        self.samples: dict[str, ClockSample] = {}
        self.bad_time_by_author: OrderedDict[str, int] = OrderedDict()
        self.chain_ahead_us = 0  # our head's ts beyond the clock, when the last append was refused
        self._throttle = Throttle(REPORT_EVERY_S, mono)
        self._peer_throttle = Throttle(REPORT_EVERY_S, mono)
        self._state = "unknown"
        self._told = False  # whether the log heard of our clock yet

    @staticmethod
    def tolerance_from(extra: dict) -> float:
        """`[node] clock_tolerance_s` of the config file (DEFAULT_TOLERANCE_S when absent)."""
        value = extra.get("node", {}).get("clock_tolerance_s", DEFAULT_TOLERANCE_S)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 120:
            raise UserError(f"node.clock_tolerance_s must be a number of seconds in (0, 120), "
                            f"got {value!r}")
        return float(value)

    # -- samples ---------------------------------------------------------------------------

    def sample(self, url: str, sent_us: int, received_us: int, headers) -> None:
        """Take a peer's clock from an answer's headers, sent and received by our clock."""
        reading = peer_time_us(headers)
        rtt = received_us - sent_us
        if reading is None or not 0 <= rtt <= MAX_RTT_US:
            return
        remote, _ = reading
        offset = (sent_us + received_us) // 2 - remote
        if url not in self.samples and len(self.samples) >= 4 * MAX_AUTHORS:
            return  # the peer table is bounded; this is a backstop
        self.samples[url] = ClockSample(offset, rtt, self.mono())
        peer = self.peers.by_url.get(url)
        if peer is not None:
            peer.clock_offset_us = -offset  # the peer's clock minus ours
            peer.clock_tolerance_us = self.tolerance_us
        self._update()

    def fresh(self) -> list[ClockSample]:
        """The latest sample of each peer heard from in the last SAMPLE_TTL_S."""
        now = self.mono()
        return [s for s in self.samples.values() if now - s.at <= SAMPLE_TTL_S]

    def offset_us(self) -> int | None:
        """Our clock minus the median of the peers' (None before any peer answered)."""
        fresh = self.fresh()
        return int(statistics.median_low(s.offset_us for s in fresh)) if fresh else None

    def state(self) -> str:
        """"unknown" (fewer than half the known peers compared yet), "ahead" or "behind" (more
        than half of those compared find our clock off that way beyond the tolerance), or "ok"."""
        fresh = self.fresh()
        if not fresh or 2 * len(fresh) < len(self.peers.by_url):
            return "unknown"
        ahead = sum(1 for s in fresh if s.offset_us > self.tolerance_us)
        behind = sum(1 for s in fresh if s.offset_us < -self.tolerance_us)
        if 2 * ahead > len(fresh):
            return "ahead"
        if 2 * behind > len(fresh):
            return "behind"
        return "ok"

    def _update(self) -> None:
        state = self.state()
        if state == self._state:
            if state in ("ahead", "behind"):
                self._report()
            return
        was, self._state = self._state, state
        if state in ("ahead", "behind"):
            self._report()  # throttled too: a state that flaps is not a log line a round
        elif state == "ok" and (was in ("ahead", "behind") or not self._told):
            log.info("clock: within %.0f s of the peers'%s (offset %+.1f s, %d peer(s))",
                     self.tolerance_us / 1e6, " again" if self._told else "",
                     (self.offset_us() or 0) / 1e6, len(self.fresh()))
        self._told = self._told or state != "unknown"

    def _report(self) -> None:
        ok, held = self._throttle.allow()
        if not ok:
            return
        offset = self.offset_us() or 0
        way = "ahead of" if self._state == "ahead" else "behind"
        message = (f"clock is {abs(offset) / 1e6:.1f} s {way} the median of "
                   f"{len(self.fresh())} peer(s) (tolerance {self.tolerance_us / 1e6:.0f} s): "
                   "orders are not signed until it is set right")
        self._say(message, held)

    def _say(self, message: str, held: int) -> None:
        more = f" ({held} similar report(s) held back)" if held else ""
        if self.status is not None:
            self.status.report(ErrorLevel.CLOCK, message + more)
        else:
            log.error("clock error: %s%s", message, more)

    # -- the guard before signing -----------------------------------------------------------

    def check_sign(self, type_: str) -> None:
        """Raise NotSigned for an order while our clock is beyond the tolerance."""
        if type_ not in ORDER_TYPES:
            return
        state = self.state()
        if state in ("ahead", "behind"):
            self.metrics[f"not_signed:{CLOCK_OFF}"] += 1
            self._report()
            raise NotSigned(CLOCK_OFF, f"clock {abs(self.offset_us() or 0) / 1e6:.1f} s "
                                       f"{state} of the peers': order not signed")

    def behind_chain(self, ahead_us: int) -> NotSigned:
        """Our head is stamped ahead of the clock (it was set back): count, report, the error."""
        self.chain_ahead_us = ahead_us
        self.metrics[f"not_signed:{CLOCK_BEHIND_CHAIN}"] += 1
        ok, held = self._throttle.allow()
        message = (f"our last action is stamped {ahead_us / 1e6:.1f} s ahead of the clock (the "
                   "clock was set back): nothing is signed until the clock passes it")
        if ok:
            self._say(message, held)
        return NotSigned(CLOCK_BEHIND_CHAIN, message)

    def signed(self) -> None:
        """An own action was signed: the clock is past our head again."""
        self.chain_ahead_us = 0

    # -- bad-time, both ways ------------------------------------------------------------------

    def own_rejected(self, reason: str, count: int, url: str) -> None:
        """The peer at `url` rejected `count` of our own actions with `reason`."""
        self.metrics[f"own_rejected:{reason}"] += count
        if reason != "bad-time":
            return
        state = self.state()
        if state == "unknown":
            return  # too early to tell whose clock is off; counted all the same
        total = self.metrics["own_rejected:bad-time"]
        if state != "ahead":
            ok, _ = self._peer_throttle.allow()
            if ok:
                log.warning("peer %s rejects our actions as bad-time although our clock agrees "
                            "with most peers': its own clock is likely behind (%d so far)",
                            url, total)
            return
        ok, held = self._throttle.allow()
        if ok:
            self._say(f"peers reject our actions as bad-time, stamped too far ahead of their "
                      f"clocks ({url}; {total} so far)", held)

    def peer_bad_time(self, author: bytes) -> None:
        """We rejected an action of `author` as `bad-time`: counted by name (a few authors)."""
        key = author.hex()
        if key not in self.bad_time_by_author and len(self.bad_time_by_author) >= MAX_AUTHORS:
            self.bad_time_by_author.popitem(last=False)
        self.bad_time_by_author[key] = self.bad_time_by_author.get(key, 0) + 1

    def to_json(self) -> dict:
        """The clock as /v1/info shows it."""
        offset = self.offset_us()
        return {
            "offset_s": None if offset is None else round(offset / 1e6, 3),
            "state": self.state(),
            "peers_compared": len(self.fresh()),
            "tolerance_s": self.tolerance_us / 1e6,
            "signing_orders": self.state() not in ("ahead", "behind"),
            "chain_ahead_of_clock_s": round(self.chain_ahead_us / 1e6, 3),
            "own_rejected_bad_time": self.metrics["own_rejected:bad-time"],
            "bad_time_by_author": dict(self.bad_time_by_author),
        }
