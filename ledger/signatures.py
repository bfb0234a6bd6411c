"""An action's signature, checked from its bytes alone.

The checks `ledger.actions` makes of a signature, in a module that imports nothing of the ledger,
so that a node's verifier processes (`node.verifier_child`), which need only these, start
faster: `ledger.actions` also imports the codec, msgpack's extensions and `typing`.
"""

from __future__ import annotations

import nacl.bindings
import nacl.exceptions

VERSION = 1  # of the action format: the first field of every action

# How every action's bytes begin: an array of seven fields, version 1, then `bin 8` of length 32
# (the author). The canonical encoding allows no other start for an action that decodes.
ACTION_HEAD = bytes((0x97, VERSION, 0xC4, 32))


def claimed_author(action_bytes: bytes) -> bytes | None:
    """The author an action's bytes name, read at its fixed place without decoding; None when
    the bytes do not begin as an action's must (they will not decode either)."""
    if action_bytes[:4] != ACTION_HEAD or len(action_bytes) < 36:
        return None
    return action_bytes[4:36]


def signature_ok(author: bytes, action_bytes: bytes, signature: bytes) -> bool:
    """The Ed25519 signature of `action_bytes` by `author` verifies."""
    try:
        nacl.bindings.crypto_sign_open(signature + action_bytes, author)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
        return False
    return True


def signature_verdicts(items: list[tuple[bytes, bytes]]) -> bytes:
    """One byte per item: 1 when its signature verifies against the author its bytes name
    (`claimed_author`), else 0. Needs no decoding, so it can run where the decoded actions are
    not: `ledger.precheck.signature_pass` takes them in place of verifying."""
    out = bytearray(len(items))
    for i, (body, signature) in enumerate(items):
        if type(body) is bytes and type(signature) is bytes:
            author = claimed_author(body)
            if author is not None and signature_ok(author, body, signature):
                out[i] = 1
    return bytes(out)
