"""In a closed community, a member's signed gossip goes on when its address block is flooded.

Requests are signed there (docs/protocol.md, "Signed requests"), so the node knows a member's
reads from a stranger's: over the block's limit, a member's signed gossip request is charged to
that member instead, while unsigned requests get 429. A request that only claims a member's key
(its signature false) gets 401 and costs its block that lane for a minute.
"""

from __future__ import annotations

from nodeproc import Cluster, head_seq, picogrid, request, signed_request, wait_until

from ledger.chain import now_us
from ledger.keys import load_identity
from ledger.requestauth import sign_request

RATE = 5  # requests/s per address block, bursts of 10
# B's node rounds at the default pace: at 200 ms its two or three requests a round alone ask
# twice the block's allowance, and the admin's `picogrid charter` (same block, community still
# open, so no lane) would wait in vain. The test floods the block itself, after closing.
B_ROUND_MS = 1000


def test_a_members_signed_gossip_passes_a_flooded_block_and_a_forged_claim_loses_it(tmp_path):
    with Cluster(tmp_path) as c:
        a = c.found("A")
        c.start(a, rate_limit=RATE)
        b = c.join("B")
        c.start(b, peers=[a], rate_limit=RATE, round_ms=B_ROUND_MS)
        wait_until(lambda: head_seq(a.url, b.agent) >= 0, 30, "A holds B", logs=c.logs)
        closing = picogrid("charter", "--dir", a.dir, "--invite-only")
        assert f"published through {a.url}" in closing.stdout, closing.stdout
        member = load_identity(b.dir / "agent.key")
        heads = f"{a.url}/v1/gossip/heads"
        wait_until(lambda: signed_request(member, "c1", "GET", heads).status == 200, 30,
                   "A is closed and answers B", logs=c.logs)
        flood = [request("GET", heads).status for _ in range(60)]  # the block's allowance
        assert flood.count(429) >= 30, flood
        signed = [signed_request(member, "c1", "GET", heads).status for _ in range(8)]
        assert signed == [200] * 8  # charged to B, not to the flooded block
        # The block is still over its limit. The eight took time, and the bucket refills 5 a
        # second, so an unsigned request may find a token (and get 401, unsigned); unsigned ones
        # sent on, faster than it refills, must soon meet 429.
        unsigned = []
        while len(unsigned) < 30 and 429 not in unsigned:
            unsigned.append(request("GET", heads).status)
        assert unsigned[-1] == 429 and set(unsigned) <= {401, 429}, unsigned
        claim = sign_request(member, "c1", "GET", "/v1/gossip/heads", now_us(), b"")
        forged = request("GET", heads, headers={**claim, "PicoGrid-Signature": "00" * 64})
        assert forged.status == 401, forged.body[:200]
        # The block has lost the lane: B's signed requests now draw on the block's bucket. A
        # loaded node can answer slowly enough for it to refill a token (5 a second) before the
        # first, so two are sent: charged to the block, the second at least is refused; charged
        # to B, both pass (its 9th and 10th, within its burst of 10).
        after = [signed_request(member, "c1", "GET", heads) for _ in range(2)]
        refused = [r for r in after if r.status == 429]
        assert refused, [r.status for r in after]
        assert all(int(r.headers["retry-after"]) >= 1 for r in refused)
