"""`picogrid audit` reads each chain once: every served action is decoded and its signature
checked exactly once, shared by the chain check, the market audit and the report (it was
checked three times: a fresh store per chain, a store of all chains, then the report)."""

from __future__ import annotations

import asyncio

from nodeproc import stored, wait_until

import ledger.actions
import ledger.precheck
from node.audit.remote import audit_url


def test_audit_checks_each_signature_once(cluster, monkeypatch):
    a = cluster.found("A")
    cluster.start(a)
    b = cluster.join("B")
    cluster.start(b, peers=[a])
    wait_until(lambda: stored(a.url) >= 2, 20, "A holds both chains")
    served = stored(a.url)

    calls = []
    real = ledger.actions.signature_ok

    def counting(author, body, signature):
        calls.append(body)
        return real(author, body, signature)

    monkeypatch.setattr(ledger.actions, "signature_ok", counting)
    monkeypatch.setattr(ledger.precheck, "signature_ok", counting)
    result = asyncio.run(audit_url(a.url))
    assert result.ok, result.to_json()
    total = sum(len(actions) for actions in result.chains.values())
    assert total >= served >= 2
    assert len(calls) == total, (len(calls), total)  # once each, not once per pass
    assert len(set(calls)) == len(calls)
