"""`picogrid audit`: fetch chains over the gossip endpoints and re-verify them locally.

Nothing the remote node says is trusted: its heads are only a claim checked against the chains it
serves, the charter must verify (against `--admin` when given), and every action goes through the
same validation a node applies to gossip. Settlements are then recomputed from the signed books.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger.actions import Action
from ledger.chain import now_us
from ledger.charter import Charter, CharterError, parse_charter
from ledger.errors import Invalid
from ledger.precheck import precheck
from node.audit.chains import ChainReport, verify_chains
from node.audit.market import audit_market
from node.p2p.client import PATIENCE, PeerClient, PeerError
from node.p2p.session import RequestSigner, open_session

PAGE = 1000


@dataclass
class AuditResult:
    url: str
    charter: Charter | None = None
    admin_pinned: bool = False
    reports: dict[bytes, ChainReport] = field(default_factory=dict)
    names: dict[bytes, dict] = field(default_factory=dict)
    chains: dict[bytes, list[Action]] = field(default_factory=dict)
    market: dict = field(default_factory=dict)  # filled by the market audit, when it runs
    error: str = ""
    missing: list[bytes] = field(default_factory=list)  # charter members the node lacks
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Nothing forked, invalid, missing or wrongly settled (disputes alone do not fail)."""
        return not self.error and all(r.status == "valid" for r in self.reports.values()) and \
            not self.market.get("problems") and not self.missing

    def to_json(self) -> dict:
        """The whole audit as JSON: every chain's report, named, and the market's."""
        agents = []
        for author, report in sorted(self.reports.items(), key=lambda kv: self._name(kv[0])):
            row = report.to_json()
            row.update({k: self.names.get(author, {}).get(k) for k in ("name", "grid", "role")})
            agents.append(row)
        return {
            "url": self.url,
            "community": self.charter.community if self.charter else None,
            "admin": self.charter.admin.hex() if self.charter else None,
            "admin_pinned": self.admin_pinned,
            "charter_version": self.charter.version if self.charter else None,
            "ok": self.ok,
            "agents": agents,
            "forked": sum(r.status == "forked" for r in self.reports.values()),
            "invalid": sum(r.status == "invalid" for r in self.reports.values()),
            "market": self.market,
            "missing_members": [m.hex() for m in self.missing],
            "notes": self.notes,
            "error": self.error or None,
        }

    def _name(self, author: bytes) -> str:
        return str(self.names.get(author, {}).get("name") or author.hex())


async def fetch_chain(client: PeerClient, author: bytes, until: int) -> list[tuple[bytes, bytes]]:
    """Every action of `author`'s chain up to seq `until`, page by page."""
    items: list[tuple[bytes, bytes]] = []
    while len(items) <= until:
        page = await client.chain(author, len(items), PAGE)
        if not page:
            break
        items += page  # a page may be short (bounded in bytes): go on up to the head
    return items


async def fetch_served_chain(client: PeerClient, author: bytes) -> list[tuple[bytes, bytes]]:
    """Every action of `author`'s chain through the JSON API (`GET /v1/agents/{id}/chain`),
    page by page: a node that keeps its own grid only fetches another grid's chain for it."""
    items: list[tuple[bytes, bytes]] = []
    start: int | None = 0
    while start is not None:
        page = await client.json(f"/v1/agents/{author.hex()}/chain",
                                 {"from": str(start), "limit": str(PAGE)})
        try:
            items += [(bytes.fromhex(a["action_bytes"]), bytes.fromhex(a["signature"]))
                      for a in page["actions"]]
            after = page["next"]
        except (KeyError, TypeError, ValueError) as exc:
            raise PeerError(f"{client.base}: chain page of {author.hex()[:12]}: {exc!r}") from None
        # a cursor that does not move on ends the chain (a node cannot keep us here)
        start = after if isinstance(after, int) and after > start else None
    return items


async def scope_of(client: PeerClient) -> tuple[str | None, dict[bytes, str]]:
    """(the node's grid when it keeps its own grid only, else None; every agent's grid as the
    node lists it: a claim, checked against the genesis each chain starts with)."""
    try:
        info = await client.json("/v1/info")
        listed = await client.json("/v1/agents")
        grids = {bytes.fromhex(r["id"]): r["grid"] for r in listed}
    except (PeerError, KeyError, TypeError, ValueError):
        return None, {}
    scoped = isinstance(info, dict) and info.get("replicate") == "grid"
    return (info.get("grid") if scoped else None), grids


async def fetch_charters(client: PeerClient, newest: Charter) -> list[Charter]:
    """Every charter version the node holds, each verified against the newest's admin key."""
    try:
        listed = await client.json("/v1/community/charters")
    except PeerError:
        return [newest]
    out = []
    for entry in listed if isinstance(listed, list) else []:
        try:
            out.append(parse_charter(bytes.fromhex(entry["signed"]), newest.admin))
        except (CharterError, KeyError, TypeError, ValueError):
            continue
    return [c for c in out if c.community == newest.community] or [newest]


async def audit_url(url: str, agent: bytes | None = None, admin: bytes | None = None,
                    timeout: float = 10.0, signer: RequestSigner | None = None,
                    ca_file: str | None = None, grid: str | None = None) -> AuditResult:
    """Raises PeerError when the node cannot be reached at all (or refuses to answer).

    With `signer` (a member's or an auditor's key) every request is signed for the community
    the charter names, so a closed community's node answers; the charter itself is public.
    `agent` audits one chain, `grid` every chain of one grid and its market. A node that keeps
    its own grid only (`replicate = "grid"`) serves another grid's chains through its JSON API,
    which fetches them from that grid's nodes (or answers 503: a PeerError).
    """
    result = AuditResult(url=url.rstrip("/"), admin_pinned=admin is not None)
    async with open_session(signer, ca_file) as session:
        client = PeerClient(session, url, timeout=timeout, patience=PATIENCE)
        try:
            result.charter = await client.charter(admin)
        except PeerError as exc:
            if exc.unreachable or (exc.status is not None and admin is None):
                raise
            result.error = f"charter refused: {exc}"
        if signer is not None and signer.community is None and result.charter is not None:
            signer.community = result.charter.community
        heads, _ = await client.heads()
        charters = await fetch_charters(client, result.charter) if result.charter else []
        own_grid, grids = await scope_of(client)
        if agent is not None:
            authors = [agent]
        elif grid is not None:
            authors = sorted(a for a in heads if grids.get(a) == grid)
        else:
            authors = sorted(heads)
        if agent is not None and agent not in heads:
            result.error = f"the node holds no chain for agent {agent.hex()}"
            return result
        if grid is not None and not authors:
            result.error = f"the node holds no agent of grid {grid!r}"
            return result
        raw = {}
        for a in authors:
            if own_grid is not None and grids.get(a, own_grid) != own_grid:
                raw[a] = await fetch_served_chain(client, a)  # fetched by the node for us
            else:
                raw[a] = await fetch_chain(client, a, heads[a][0])
    if own_grid is not None and agent is None and grid is None:
        result.notes.append(f"the node keeps only grid {own_grid!r} whole (replicate = "
                            '"grid"): of other grids it serves the geneses here; audit one of '
                            "them with --grid NAME (the node fetches it from that grid)")
    charter = result.charter
    membrane = charter.membrane() if charter else None
    claimed = {a: heads[a] for a in authors}
    now = now_us()
    # Each chain is decoded and its signatures checked once; the chain check, the market audit
    # and the report all use that one pass.
    checked = {a: precheck(list(items), now) for a, items in raw.items()}
    result.reports = verify_chains(raw, membrane, now, claimed=claimed, prechecked=checked)
    if agent is None and grid is None and charter is not None:  # listed, but not served
        result.missing = [m for m in charter.members if m not in heads]
    if agent is None and charter is not None:
        result.market = audit_market(raw, charters or [charter], membrane, now,
                                     prechecked=checked)
    for author in raw:
        actions = [a for a in checked[author] if not isinstance(a, Invalid)]
        result.chains[author] = actions
        genesis = next((a for a in actions if a.type == "genesis"), None)
        if genesis is not None:
            result.names[author] = genesis.payload
    return result


async def safe_audit(url: str, agent: bytes | None, admin: bytes | None,
                     signer: RequestSigner | None = None,
                     ca_file: str | None = None, grid: str | None = None) -> AuditResult:
    """Audit `url`; an unreachable or refusing node is a result with an error, not an exception."""
    try:
        return await audit_url(url, agent, admin, signer=signer, ca_file=ca_file, grid=grid)
    except PeerError as exc:
        if exc.status == 503:  # it could not fetch another grid's chains for us
            return AuditResult(url=url, error=f"unavailable: {exc}")
        if exc.status in (401, 403):
            hint = ("pass --key FILE with a member's or an auditor's key" if signer is None
                    else "this key is not a member's or an auditor's of this community")
            return AuditResult(url=url, error=f"refused: {exc}: the community is closed; {hint}")
        return AuditResult(url=url, error=f"unreachable: {exc}")
