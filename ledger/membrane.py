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


@dataclass(frozen=True, slots=True)
class Binding:
    """What a protocol-2 invite fixes besides the grid: the genesis must declare exactly this."""

    role: str
    household: str
    capacity_wh: int
    max_power_w: int

    @classmethod
    def of(cls, genesis_payload: dict) -> Binding:
        """The binding a genesis declares (its role, household, capacity and power)."""
        p = genesis_payload
        return cls(p["role"], p["household"], p["capacity_wh"], p["max_power_w"])


def invite_bytes(community: str, grid: str, agent: bytes, binding: Binding | None = None) -> bytes:
    """What an invite signs: version 1 names the grid; version 2 also binds the attributes."""
    if binding is None:
        return codec.encode(["picogrid-invite", community, grid, agent])
    b = binding
    fields = [b.role, b.household, b.capacity_wh, b.max_power_w]
    return codec.encode(["picogrid-invite-2", community, grid, agent, *fields])


def make_invite(
    admin: Identity, community: str, grid: str, agent: bytes, binding: Binding | None = None
) -> bytes:
    """The admin's signature that lets `agent` join `grid` of a closed `community`.

    With `binding`, the invite also fixes the role, household, capacity and power the agent's
    genesis must declare; a genesis declaring anything else is refused.
    """
    return admin.sign(invite_bytes(community, grid, agent, binding))


def invite_ok(
    membrane: Membrane, grid: str, agent: bytes, invite: bytes | None, genesis: dict | None = None
) -> bool:
    """True when the genesis may join: an open community, or a valid admin invite.

    Given the `genesis` payload, a binding invite must match its declared attributes; a
    version-1 invite (grid only) binds nothing else.
    """
    if membrane.open or agent in membrane.members:
        return True
    if invite is None or membrane.admin is None:
        return False
    if genesis is not None:
        bound = invite_bytes(membrane.community, grid, agent, Binding.of(genesis))
        if verify(membrane.admin, bound, invite):
            return True
    return verify(membrane.admin, invite_bytes(membrane.community, grid, agent), invite)
