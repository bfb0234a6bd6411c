"""The intrinsic checks of a batch of foreign actions, optionally spread over a thread pool.

What an action proves by itself (encoding, signature, seq rules, schema, the future bound on its
timestamp) needs nothing from the store, so it runs before the store's lock is taken. PyNaCl
releases the GIL while it verifies, so with a pool the signatures of one batch are checked on
several cores at once, or while the previous batch is being written.
"""

from __future__ import annotations

from concurrent.futures import Executor, Future

from ledger.actions import Action
from ledger.errors import BAD_ENCODING, BAD_SIGNATURE, TOO_LARGE, Invalid
from ledger.signatures import claimed_author, signature_ok
from ledger.validation import check_intrinsic

Checked = list[Action | Invalid]


# Reasons found before the signature is checked: final whatever the signature says.
_BEFORE_SIGNATURE = frozenset((BAD_ENCODING, TOO_LARGE, BAD_SIGNATURE))


def check_chunk(items: list[tuple[bytes, bytes]], now_us: int) -> Checked:
    """`check_intrinsic` of each `(action_bytes, signature)`: the `Action`, or the `Invalid`.

    Done in two passes with the same outcome as one call per item: first everything but the
    signatures (`decode_pass`), then the signatures in a tight loop (`signature_pass`; verifying
    between Python decodes cost ~1.5 us more per action: the two evict each other from the CPU
    caches).
    """
    return signature_pass(items, decode_pass(items, now_us), now_us)


def decode_pass(items: list[tuple[bytes, bytes]], now_us: int) -> Checked:
    """`check_intrinsic` of each item without its signature: the first half of `check_chunk`."""
    out: Checked = []
    append = out.append
    for body, signature in items:
        try:
            append(check_intrinsic(body, signature, now_us, check_signature=False))
        except Invalid as exc:
            append(exc)
    return out


def signature_pass(
    items: list[tuple[bytes, bytes]], decoded: Checked, now_us: int, verdicts: bytes | None = None
) -> Checked:
    """Finish `decode_pass`'s outcomes (a new list): each signature checked.

    `verdicts`, when given, is `ledger.signatures.signature_verdicts(items)` computed elsewhere
    (another process): an action's verdict is taken instead of verifying it again, since the author it was checked
    against is the one the action names (`claimed_author`; should they ever differ, the
    signature is verified here). An item whose first pass found a reason that ranks after the
    signature, and every warrant (its evidence is signed too), is checked again in full, so the
    reason is exactly the one `check_intrinsic` gives.
    """
    out = list(decoded)
    for i, outcome in enumerate(out):
        if isinstance(outcome, Action) and outcome.type != "warrant":
            if verdicts is not None and claimed_author(outcome.action_bytes) == outcome.author:
                ok = verdicts[i] == 1
            else:
                ok = signature_ok(outcome.author, outcome.action_bytes, outcome.signature)
            if not ok:
                out[i] = Invalid(BAD_SIGNATURE, "signature does not verify against the author")
        elif not (isinstance(outcome, Invalid) and outcome.reason in _BEFORE_SIGNATURE):
            try:
                out[i] = check_intrinsic(*items[i], now_us)
            except Invalid as exc:
                out[i] = exc
    return out


def precheck(
    items: list[tuple[bytes, bytes]], now_us: int, pool: Executor | None = None, workers: int = 2
) -> Checked:
    """The intrinsic checks of a batch, in order; with `pool`, spread over its threads."""
    if pool is None or len(items) < 2 * workers:
        return check_chunk(items, now_us)
    return gather(submit_precheck(pool, items, now_us, workers))


SLICE = 64  # actions per task: small enough that the pool's threads stay evenly busy


def submit_precheck(
    pool: Executor, items: list[tuple[bytes, bytes]], now_us: int, workers: int = 2
) -> list[Future]:
    """Start the intrinsic checks of a batch on `pool`; see `gather`.

    The batch is cut into at least `workers` slices of at most `SLICE` actions, so a thread that
    lost its core for a while (to the thread writing the store) does not leave the others idle
    at the end of the batch.
    """
    size = max(1, min(SLICE, -(-len(items) // workers)))
    return [
        pool.submit(check_chunk, items[i : i + size], now_us) for i in range(0, len(items), size)
    ]


def gather(futures: list[Future]) -> Checked:
    """The outcomes of `submit_precheck`, in the order of the batch."""
    return [outcome for f in futures for outcome in f.result()]
