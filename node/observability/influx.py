"""Export readings, trades and KPIs to InfluxDB (1.x or 2.x) as line protocol, losing nothing.

    exporter = InfluxExporter(cfg, agent, store, charters, metrics, status)
    # Node.start builds it when [influx] url is set, listens, and runs `exporter.run()`

What is exported (every point timestamped at the start of its interval, in microseconds):

| measurement | tags                                   | fields                                       |
|-------------|----------------------------------------|----------------------------------------------|
| `reading`   | agent, role, grid, household, sensor   | import_wh, export_wh, soc_wh, bus_mv,        |
|             |                                        | current_ua, power_uw, samples (integers)     |
| `trade`     | agent (who reports), grid, seller,     | energy_wh, price (integers), status,         |
|             | buyer, n (the trade's place)           | offer, bid (strings)                         |
| `kpi`       | agent (who reports), grid              | self_sufficiency, self_consumption (floats), |
|             |                                        | savings, baseline, net (integer milli-cents) |

Readings come from this node's own signed `reading` actions. Trades and KPIs come from the
intervals this node settled, once they are complete (both sides of every trade settled, every
settling agent metered) or, at the latest, two intervals after they started.

The durable queue: points are written to a segment file under `DIR/influx/queue/` and fsync'd
BEFORE anything is sent; segments are sent oldest first in batches and deleted only after a 2xx
answer. An unreachable or failing server keeps them (retry with back-off, 1 s doubling up to
`max_backoff_s`) and every failed attempt is reported as `ErrorLevel.SENDING` through the node's
`StatusReporter` (or logged when there is none) (status LED: 2 blinks). A restart resends what is left. Which of our own actions
were already turned into points is remembered in `DIR/influx/state.json` (written after the
points): a crash in between sends a point twice, which InfluxDB stores once (same series and
timestamp). A point the server refuses for good (HTTP 400, one point at a time) is moved to
`DIR/influx/rejected.lp`, still on disk, and reported.

Config (`[influx]` in config.toml): `url`, `version` (1 or 2; 2 when `bucket` is given),
`database` (1.x, created if missing), `username`/`password` (1.x, optional), `bucket` and `org`
(2.x), `token` (sent as `Authorization: Token ...`), `batch_lines` (5000), `max_backoff_s` (60),
`timeout_s` (10).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import aiohttp

from hardware.status import ErrorLevel, StatusReporter
from ledger.chain import now_us
from ledger.charter import Charter
from ledger.paging import chain_pages
from ledger.store import Store
from market.intervals import interval_start_us
from node.config import NodeConfig
from node.observability.influx_points import (
    interval_kpis,
    kpi_point,
    point,
    reading_point,
    trade_points,
)
from node.observability.influx_queue import Batch, DiskQueue, write_durably
from node.observability.influx_settings import InfluxSettings
from node.trading.interval_view import IntervalState, interval_state, socs_before

__all__ = ["DiskQueue", "InfluxExporter", "InfluxSettings", "point"]

if TYPE_CHECKING:
    from ledger.actions import Action

log = logging.getLogger(__name__)
CHAIN_PAGE = 1000
POLL_S = 1.0

# -- the exporter ---------------------------------------------------------------------------------


class InfluxExporter:
    """Turns this node's own actions into points, queues them durably and sends them."""

    def __init__(self, cfg: NodeConfig, agent: bytes, store: Store, charters: list[Charter],
                 metrics: Counter[str], status: StatusReporter | None,
                 settings: InfluxSettings | None = None) -> None:
        self.cfg = cfg
        self.agent = agent
        self.store = store
        self.charters = charters
        self.metrics = metrics
        self.status = status
        self.settings = settings or InfluxSettings.from_config(cfg)
        self.dir = cfg.dir / "influx"
        self.queue = DiskQueue(self.dir / "queue")
        self.state_path = self.dir / "state.json"
        self.rejected_path = self.dir / "rejected.lp"
        self.seq, self.pending = self._load_state()
        self.sent_points = 0
        self.rejected_points = 0
        self.failed_attempts = 0
        self.failures = 0  # consecutive failed attempts
        self.retry_at = 0.0
        self.last_error = ""
        self._batch_limit = self.settings.batch_lines
        self._db_ready = self.settings.version == 2
        self._wake = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None

    # -- what has been turned into points ------------------------------------------------------

    def _load_state(self) -> tuple[int, set[int]]:
        try:
            data = json.loads(self.state_path.read_text())
            return int(data["seq"]), {int(k) for k in data["pending"]}
        except FileNotFoundError:
            return -1, set()
        except (ValueError, KeyError, TypeError) as exc:
            # Start over: every point is sent again, and InfluxDB keeps one copy of each.
            log.error(
                "%s unreadable (%s): exporting this node's history again", self.state_path, exc
            )
            return -1, set()

    def _save_state(self) -> None:
        write_durably(
            self.state_path, json.dumps({"seq": self.seq, "pending": sorted(self.pending)})
        )

    # -- listener --------------------------------------------------------------------------------

    async def on_new(self, actions: list[Action]) -> None:
        """Our own actions, and others' settlements and readings while intervals are pending,
        wake the exporter."""
        me = self.agent
        if any(
            a.author == me or (self.pending and a.type in ("settlement", "reading"))
            for a in actions
        ):
            self._wake.set()

    # -- collecting (runs on a worker thread: it reads the store and writes files) ---------------

    def collect(self) -> int:
        """Queue the points of our new actions and of intervals now complete; returns how many."""
        charters = self.charters
        if not charters:
            return 0
        me, cfg = self.agent, self.cfg
        lines: list[str] = []
        seq, pending = self.seq, set(self.pending)
        for batch in chain_pages(self.store.chain, me, seq + 1, CHAIN_PAGE):
            for a in batch:
                if a.type == "reading":
                    k = a.payload["interval"]
                    line = reading_point(
                        a.payload,
                        agent=cfg.name,
                        role=cfg.role,
                        grid=cfg.grid,
                        household=cfg.household,
                        ts_us=interval_start_us(charters, k),
                    )
                    if line is not None:
                        lines.append(line)
                elif a.type == "settlement":
                    pending.add(a.payload["interval"])
            seq = batch[-1].seq
        now = now_us()
        for k in sorted(pending):
            state = interval_state(self.store, charters, cfg.grid, k)
            if not self._complete(state) and now < interval_start_us(charters, k + 2):
                continue
            ts = interval_start_us(charters, k)
            lines += trade_points(state, me, agent=cfg.name, grid=cfg.grid, ts_us=ts)
            socs = socs_before(self.store, cfg.grid, k, state.participants, charters=charters)
            line = kpi_point(interval_kpis(state, socs), agent=cfg.name, grid=cfg.grid, ts_us=ts)
            if line is not None:
                lines.append(line)
            pending.discard(k)
        self.queue.put(lines)  # durable before the state says these actions are done
        if seq != self.seq or pending != self.pending:
            self.seq, self.pending = seq, pending
            self._save_state()
        return len(lines)

    @staticmethod
    def _complete(state: IntervalState) -> bool:
        if any(s.status == "pending" for s in state.statuses):
            return False
        return all(agent in state.readings for agent in state.settlements)

    # -- sending -----------------------------------------------------------------------------------

    async def _post(self, url: str, params: dict[str, str], body: bytes) -> tuple[int, str]:
        """(HTTP status, body text); status 0 when the server could not be reached."""
        assert self._session is not None
        try:
            async with self._session.post(
                url,
                params=params,
                data=body,
                headers=self.settings.headers(),
                auth=self.settings.auth(),
            ) as resp:
                return resp.status, (await resp.text(errors="replace"))[:300]
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return 0, f"{exc.__class__.__name__}: {exc}"

    async def _ensure_database(self) -> bool:
        if self._db_ready:
            return True
        name = self.settings.database.replace("\\", "\\\\").replace('"', '\\"')
        status, text = await self._post(
            f"{self.settings.url}/query", {"q": f'CREATE DATABASE "{name}"'}, b""
        )
        if 200 <= status < 300:
            self._db_ready = True
            return True
        if status in (401, 403):  # not allowed to create it: it may exist; writes will tell
            log.warning(
                "%s: may not create the database (%s); writing anyway",
                self.settings.where(),
                text.strip(),
            )
            self._db_ready = True
            return True
        self._failed(status, text)
        return False

    async def flush(self) -> None:
        """Send queued points oldest first until the queue is empty or the server fails."""
        loop = asyncio.get_running_loop()
        url, params = self.settings.write_request()
        while len(self.queue):
            if not await self._ensure_database():
                return
            batch = await loop.run_in_executor(None, self.queue.take, self._batch_limit)
            body = ("\n".join(batch.lines) + "\n").encode()
            status, text = await self._post(url, params, body)
            if 200 <= status < 300:
                await loop.run_in_executor(None, self.queue.done, batch)
                self.sent_points += len(batch.lines)
                self.metrics["influx_points_sent"] += len(batch.lines)
                if self.failures:
                    log.info(
                        "%s reachable again; %d point(s) still queued",
                        self.settings.where(),
                        len(self.queue),
                    )
                self.failures, self.last_error = 0, ""
                self._batch_limit = self.settings.batch_lines
            elif status == 404 and self.settings.version == 1 and "database" in text:
                self._db_ready = False
                self._failed(status, text)
                return
            elif status in (400, 413, 422) and len(batch.lines) > 1:
                self._batch_limit = 1  # find the point it refuses, one at a time
            elif status in (400, 413, 422):
                await loop.run_in_executor(None, self._reject, batch)
                self._report(
                    f"{self.settings.where()} refused a point for good (HTTP {status} "
                    f"{text.strip()}); it is kept in {self.rejected_path}"
                )
            else:
                self._failed(status, text)
                return

    def _reject(self, batch: Batch) -> None:
        with open(self.rejected_path, "a", encoding="utf-8") as f:
            f.write("\n".join(batch.lines) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.queue.done(batch)
        self.rejected_points += len(batch.lines)

    def _failed(self, status: int, text: str) -> None:
        self.failures += 1
        self.failed_attempts += 1
        self.metrics["influx_failures"] += 1
        delay = min(self.settings.max_backoff_s, 2.0 ** min(self.failures - 1, 30))
        self.retry_at = time.monotonic() + delay
        why = text.strip() if status == 0 else f"HTTP {status} {text.strip()}"
        self.last_error = why
        self._report(
            f"{self.settings.where()}: {why}; {len(self.queue)} point(s) kept on disk, "
            f"retry in {delay:g} s"
        )

    def _report(self, message: str) -> None:
        if self.status is None:
            log.error("sending error: %s", message)
        else:
            self.status.report(ErrorLevel.SENDING, message)

    # -- the task ------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Collect and send, every POLL_S or when woken, until cancelled."""
        loop = asyncio.get_running_loop()
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s)
        log.info(
            "exporting to %s; %d point(s) queued from before",
            self.settings.where(),
            len(self.queue),
        )
        async with aiohttp.ClientSession(timeout=timeout) as session:
            self._session = session
            while True:
                try:
                    await loop.run_in_executor(None, self.collect)
                    if len(self.queue) and time.monotonic() >= self.retry_at:
                        await self.flush()
                except asyncio.CancelledError:
                    raise
                except Exception:  # the exporter must never stop the node
                    log.exception("InfluxDB export step failed")
                try:
                    await asyncio.wait_for(self._wake.wait(), POLL_S)
                except TimeoutError:
                    pass
                self._wake.clear()

    def stats(self) -> dict[str, Any]:
        """What /metrics shows of the exporter: queued, sent, failed, refused, the target."""
        return {
            "queued_points": len(self.queue),
            "sent_points": self.sent_points,
            "rejected_points": self.rejected_points,
            "failed_attempts": self.failed_attempts,
            "last_error": self.last_error or None,
            "target": self.settings.where(),
        }

