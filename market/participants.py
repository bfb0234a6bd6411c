"""The agents of a grid as the market sees them: built from each agent's genesis payload."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

ROLES = ("consumer", "generator", "storage")
COMMUNITY = "community"  # the household of community assets (neighbourhood battery, shared solar)


@dataclass(frozen=True, slots=True)
class Participant:
    """An agent's market identity: who it is, what it does, where it sits, what it can hold."""

    agent: bytes  # 32-byte agent id
    name: str
    role: str  # "consumer" | "generator" | "storage"
    household: str  # "community" for community assets
    capacity_wh: int = 0  # storage only
    max_power_w: int = 0

    @property
    def is_community(self) -> bool:
        return self.household == COMMUNITY

    def power_cap_wh(self, interval_ms: int) -> int:
        """Energy `max_power_w` moves in an interval of `interval_ms`, rounded down to whole Wh."""
        return self.max_power_w * interval_ms // 3_600_000


def labels(participants: Mapping[bytes, Participant]) -> dict[bytes, str]:
    """A display name per agent that tells agents apart: its name; a name two agents share gets
    the household (`Home (home2)`), and if that is shared too, the start of the id."""
    by_name = Counter(p.name for p in participants.values())
    by_house = Counter((p.name, p.household) for p in participants.values())
    out = {}
    for agent, p in participants.items():
        if by_name[p.name] == 1:
            out[agent] = p.name
        elif by_house[(p.name, p.household)] == 1:
            out[agent] = f"{p.name} ({p.household})"
        else:
            out[agent] = f"{p.name} ({p.household}, {agent.hex()[:8]})"
    return out


def simulated_agent_id(name: str) -> bytes:
    """The agent id the simulator gives a named agent: BLAKE2b-256 of the UTF-8 name."""
    return hashlib.blake2b(name.encode("utf-8"), digest_size=32).digest()


def within_charter(
    participants: dict[bytes, Participant], max_capacity_wh: int, max_power_w: int
) -> dict[bytes, Participant]:
    """The participants with declared capacity and power cut to the charter's limits.

    A node refuses a genesis beyond the limits (`over-limit`); this keeps a clearing right even
    over chains accepted before the limits were known.
    """
    if all(
        p.capacity_wh <= max_capacity_wh and p.max_power_w <= max_power_w
        for p in participants.values()
    ):
        return participants  # the usual case: nothing to cut, nothing to copy
    return {
        a: Participant(
            p.agent,
            p.name,
            p.role,
            p.household,
            min(p.capacity_wh, max_capacity_wh),
            min(p.max_power_w, max_power_w),
        )
        for a, p in participants.items()
    }
