"""Signed agent infos (PROTOCOL section 4): how agents announce the URL they can be reached at."""

from __future__ import annotations

from dataclasses import dataclass

from ledger import codec
from ledger.keys import Identity, verify

MAX_INFO_BYTES = 1024
MAX_LIFETIME_US = 30 * 60 * 1_000_000
MAX_SKEW_US = 3 * 60 * 1_000_000


class AgentInfoError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class AgentInfo:
    agent: bytes
    community: str
    url: str
    created_us: int
    expires_us: int
    info_bytes: bytes
    signature: bytes

    def wire(self) -> list[bytes]:
        return [self.info_bytes, self.signature]


def make_agent_info(
    identity: Identity, community: str, url: str, now_us: int, lifetime_us: int = MAX_LIFETIME_US
) -> AgentInfo:
    body = codec.encode([1, identity.agent, community, url, now_us, now_us + lifetime_us])
    return AgentInfo(
        identity.agent, community, url, now_us, now_us + lifetime_us, body, identity.sign(body)
    )


def parse_agent_info(item: object, now_us: int, community: str | None = None) -> AgentInfo:
    """Check a decoded `[info_bytes, signature]`; AgentInfoError says what is wrong."""
    if (
        not isinstance(item, list)
        or len(item) != 2
        or not isinstance(item[0], bytes)
        or not isinstance(item[1], bytes)
    ):
        raise AgentInfoError("an agent info is [info_bytes, signature]")
    body, signature = item
    if len(body) + len(signature) > MAX_INFO_BYTES:
        raise AgentInfoError("agent info larger than 1 KiB")
    try:
        fields = codec.decode(body)
    except codec.CodecError as exc:
        raise AgentInfoError(f"agent info not canonical: {exc}") from None
    if not isinstance(fields, list) or len(fields) != 6:
        raise AgentInfoError("agent info must have six fields")
    v, agent, comm, url, created, expires = fields
    if (
        type(v) is not int
        or v != 1
        or not isinstance(agent, bytes)
        or len(agent) != 32
        or not isinstance(comm, str)
        or not isinstance(url, str)
        or type(created) is not int
        or type(expires) is not int
    ):
        raise AgentInfoError("agent info fields have the wrong types")
    if url and not url.startswith(("http://", "https://")):
        raise AgentInfoError("agent info url must be http(s) or empty")
    if not 0 <= expires - created <= MAX_LIFETIME_US:
        raise AgentInfoError("agent info lifetime must be between 0 and 30 minutes")
    if abs(created - now_us) > MAX_SKEW_US:
        raise AgentInfoError("agent info created_us is more than 3 minutes from our clock")
    if expires < now_us:
        raise AgentInfoError("agent info has expired")
    if community is not None and comm != community:
        raise AgentInfoError(f"agent info is for community {comm!r}, not {community!r}")
    if not verify(agent, body, signature):
        raise AgentInfoError("agent info signature does not verify")
    return AgentInfo(agent, comm, url, created, expires, body, signature)
