"""`picogrid invite` signs version-1 invites and protocol-2 binding invites (in-process)."""

from __future__ import annotations

from ledger.keys import save_identity
from ledger.membrane import Binding, Membrane, invite_ok
from ledger.testing import genesis_payload, identity
from node.cli.main import main

ADMIN, JOINER = identity(1), identity(2)


def invite(tmp_path, capsys, *extra: str) -> tuple[int, str]:
    key = tmp_path / "admin.key"
    if not key.exists():
        save_identity(ADMIN, key)
    argv = ["invite", "--admin-key", str(key), "--community", "c", "--grid", "g1"]
    code = main([*argv, *extra, JOINER.agent.hex()])
    return code, capsys.readouterr().out.strip()


def test_a_binding_invite_admits_only_the_declared_household(tmp_path, capsys):
    code, out = invite(
        tmp_path, capsys, "--role", "consumer", "--household", "home3", "--max-power-w", "3000"
    )
    assert code == 0
    closed = Membrane("c", ADMIN.agent, open=False)
    signed = bytes.fromhex(out)
    ok = genesis_payload("c", household="home3", max_power_w=3000, invite=signed)
    assert Binding.of(ok) == Binding("consumer", "home3", 0, 3000)
    assert invite_ok(closed, "g1", JOINER.agent, signed, ok)
    assert not invite_ok(closed, "g1", JOINER.agent, signed, ok | {"household": "home1"})


def test_a_partial_binding_is_refused_and_no_binding_gives_a_version_1_invite(tmp_path, capsys):
    code, out = invite(tmp_path, capsys, "--role", "consumer")
    assert code == 2 and "together" in out
    code, out = invite(tmp_path, capsys)
    closed = Membrane("c", ADMIN.agent, open=False)
    assert code == 0
    assert invite_ok(closed, "g1", JOINER.agent, bytes.fromhex(out), genesis_payload("c"))
