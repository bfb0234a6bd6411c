"""Gossip message bodies (PROTOCOL section 4): msgpack, `application/msgpack`.

Signed objects inside (actions, agent infos, charters) are checked canonically by `ledger`; the
envelopes here are plain msgpack, decoded with limits so a peer cannot make us allocate much.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgpack

CONTENT_TYPE = "application/msgpack"
MAX_BODY = 4 * 1024 * 1024
MAX_BATCH = 1000
# The most a node reads of a peer's answer: a chain page (1000 actions of up to 16 KiB each) is
# about 16.5 MiB. Anything larger is refused unread, so a peer cannot take our memory.
MAX_ANSWER = 32 * 1024 * 1024
# An optional header on POST /v1/gossip/actions: "all" means the sender pushed these actions to
# every peer it knows. Nodes that do not know it just forward as usual.
PUSH_HEADER = "PicoGrid-Push"


class BadBody(ValueError):
    """An undecodable or wrongly shaped gossip body."""


def pack(value: Any) -> bytes:
    """msgpack with binary as bin."""
    return msgpack.packb(value, use_bin_type=True)


def unpack(data: bytes) -> Any:
    """Decode msgpack within the protocol's limits; BadBody otherwise."""
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=False,
            use_list=True,
            timestamp=0,
        )
    except Exception as exc:  # msgpack raises a variety of ValueError subclasses and others
        raise BadBody(f"undecodable msgpack body ({exc.__class__.__name__})") from None


def pack_heads(heads: dict[bytes, tuple[int, bytes]]) -> bytes:
    """The heads answer: author -> [seq, hash], sorted."""
    return pack({author: [seq, h] for author, (seq, h) in sorted(heads.items())})


def unpack_heads(data: bytes) -> dict[bytes, tuple[int, bytes]]:
    """A heads answer checked; BadBody otherwise."""
    value = unpack(data)
    if not isinstance(value, dict):
        raise BadBody("heads must be a map")
    heads = {}
    for author, entry in value.items():
        if (
            not isinstance(author, bytes)
            or len(author) != 32
            or not isinstance(entry, list)
            or len(entry) != 2
            or type(entry[0]) is not int
            or entry[0] < 0
            or not isinstance(entry[1], bytes)
            or len(entry[1]) != 32
        ):
            raise BadBody("heads entries are author (bin 32) -> [seq, hash (bin 32)]")
        heads[author] = (entry[0], entry[1])
    return heads


def batches(
    items: list[list[bytes]], max_items: int = MAX_BATCH, max_bytes: int = MAX_BODY - 1024
) -> Iterator[list[list[bytes]]]:
    """Cut signed items (`[bin, bin]`) into request bodies a peer accepts: <= 1000, < 4 MiB."""
    batch: list[list[bytes]] = []
    size = 5
    for item in items:
        item_size = 1 + sum(5 + len(x) for x in item)
        if batch and (len(batch) >= max_items or size + item_size > max_bytes):
            yield batch
            batch, size = [], 5
        batch.append(item)
        size += item_size
    if batch:
        yield batch


def signed_list(value: Any, what: str = "signed actions") -> list[list]:
    """An array of `[bin, bin]` pairs, at most MAX_BATCH of them."""
    if not isinstance(value, list):
        raise BadBody(f"body must be an array of {what}")
    if len(value) > MAX_BATCH:
        raise BadBody(f"at most {MAX_BATCH} {what} per request")
    return value
