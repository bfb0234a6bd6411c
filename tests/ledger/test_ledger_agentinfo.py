"""Signed agent infos (PROTOCOL section 4)."""

from __future__ import annotations

import pytest

from ledger import codec
from ledger.agentinfo import (
    MAX_LIFETIME_US,
    MAX_SKEW_US,
    AgentInfoError,
    make_agent_info,
    parse_agent_info,
)
from ledger.testing import T0, identity

ME = identity(1)


def test_an_agent_info_round_trips():
    info = make_agent_info(ME, "test", "http://10.0.0.5:8470", T0)
    parsed = parse_agent_info(codec.decode(codec.encode(info.wire())), T0 + 1, "test")
    assert parsed == info
    assert parsed.expires_us - parsed.created_us == MAX_LIFETIME_US
    assert parse_agent_info(make_agent_info(ME, "test", "", T0).wire(), T0).url == ""


def signed(fields: list, signer=ME) -> list[bytes]:
    body = codec.encode(fields)
    return [body, signer.sign(body)]


@pytest.mark.parametrize(
    "item, now",
    [
        (signed([1, ME.agent, "test", "http://x", T0, T0 + MAX_LIFETIME_US + 1]), T0),
        (signed([1, ME.agent, "test", "http://x", T0, T0 - 1]), T0),
        (signed([1, ME.agent, "test", "ftp://x", T0, T0 + 10]), T0),
        (signed([1, ME.agent, "test", "http://x", T0, T0 + 10]), T0 + MAX_SKEW_US + 1),
        (signed([1, ME.agent, "test", "http://x", T0, T0 + 10]), T0 - MAX_SKEW_US - 1),
        (signed([1, ME.agent, "test", "http://x", T0, T0 + 10]), T0 + 11),  # expired
        (signed([1, ME.agent, "test", "http://x", T0, T0 + 10], identity(2)), T0),
        (signed([2, ME.agent, "test", "http://x", T0, T0 + 10]), T0),
        (signed([1, ME.agent, "test", "http://x", T0]), T0),
        (signed([1, ME.agent, "test", "http://" + "x" * 1000, T0, T0 + 10]), T0),
        ([b"\x91\xcc\x01", bytes(64)], T0),
        ([b"x"], T0),
    ],
)
def test_bad_agent_infos_are_refused(item, now):
    with pytest.raises(AgentInfoError):
        parse_agent_info(item, now)


def test_an_agent_info_of_another_community_is_refused():
    info = make_agent_info(ME, "other", "http://x", T0)
    with pytest.raises(AgentInfoError, match="community"):
        parse_agent_info(info.wire(), T0, "test")
