"""Ed25519 identities and key files."""

from __future__ import annotations

import os
import stat

import pytest

from ledger.keys import (
    Identity,
    KeyFileError,
    load_identity,
    parse_agent_hex,
    save_identity,
    verify,
)


def test_agent_id_is_the_public_key_and_signatures_verify():
    ident = Identity.generate()
    assert len(ident.agent) == 32
    assert ident.agent_hex == ident.agent.hex()
    sig = ident.sign(b"hello")
    assert len(sig) == 64
    assert verify(ident.agent, b"hello", sig)
    assert not verify(ident.agent, b"hellO", sig)
    assert not verify(Identity.generate().agent, b"hello", sig)
    assert not verify(ident.agent, b"hello", sig[:63])
    assert not verify(ident.agent[:31], b"hello", sig)


def test_a_seed_gives_the_same_identity_and_repr_hides_the_secret():
    a, b = Identity.from_seed(bytes(range(32))), Identity.from_seed(bytes(range(32)))
    assert a.agent == b.agent
    assert a.sign(b"m") == b.sign(b"m")  # Ed25519 is deterministic
    assert bytes(range(32)).hex() not in repr(a)
    assert a.agent_hex in repr(a)


def test_key_file_is_private_and_loads_back(tmp_path):
    ident = Identity.generate()
    path = tmp_path / "agent.key"
    save_identity(ident, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_identity(path).agent == ident.agent


def test_an_existing_key_is_never_overwritten(tmp_path):
    path = tmp_path / "agent.key"
    save_identity(Identity.generate(), path)
    before = path.read_bytes()
    with pytest.raises(KeyFileError, match="already exists"):
        save_identity(Identity.generate(), path)
    assert path.read_bytes() == before


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_key_others_can_read_is_refused_with_the_fix(tmp_path, mode):
    path = tmp_path / "agent.key"
    save_identity(Identity.generate(), path)
    os.chmod(path, mode)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_identity(path)


@pytest.mark.parametrize("text", ["not hex", "ab" * 31, "ab" * 33, ""])
def test_malformed_key_files_are_refused(tmp_path, text):
    path = tmp_path / "agent.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, text.encode())
    os.close(fd)
    with pytest.raises(KeyFileError):
        load_identity(path)


def test_missing_key_file(tmp_path):
    with pytest.raises(KeyFileError, match="no key file"):
        load_identity(tmp_path / "nope.key")


def test_agent_hex_parsing():
    agent = Identity.generate().agent
    assert parse_agent_hex(agent.hex()) == agent
    for bad in (agent.hex().upper(), agent.hex()[:-1], "zz" * 32, agent.hex() + "00"):
        with pytest.raises(ValueError):
            parse_agent_hex(bad)
