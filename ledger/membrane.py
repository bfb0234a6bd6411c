"""Community membrane (PROTOCOL section 5): who may join, and admin invites."""

from __future__ import annotations

from dataclasses import dataclass

from ledger import codec
from ledger.keys import Identity, verify


@dataclass(frozen=True, slots=True)
class Membrane:
    """What a node needs to admit a genesis: its community, the pinned admin key, openness, and
    the members the charter that closed the community kept (admitted with no invite)."""

    community: str
    admin: bytes | None = None
    open: bool = True
    members: frozenset[bytes] = frozenset()


def invite_bytes(community: str, grid: str, agent: bytes) -> bytes:
    return codec.encode(["picogrid-invite", community, grid, agent])


def make_invite(admin: Identity, community: str, grid: str, agent: bytes) -> bytes:
    """The admin's signature that lets `agent` join `grid` of a closed `community`."""
    return admin.sign(invite_bytes(community, grid, agent))


def invite_ok(membrane: Membrane, grid: str, agent: bytes, invite: bytes | None) -> bool:
    """Open, or listed by the charter as a member, or invited by the admin to this grid."""
    if membrane.open or agent in membrane.members:
        return True
    if invite is None or membrane.admin is None:
        return False
    return verify(membrane.admin, invite_bytes(membrane.community, grid, agent), invite)
