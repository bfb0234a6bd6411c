"""The fixed reason codes of PROTOCOL section 2 (and `pending-full`), and their exception."""

from __future__ import annotations

BAD_ENCODING = "bad-encoding"
BAD_SIGNATURE = "bad-signature"
BAD_LINK = "bad-link"
BAD_SEQ = "bad-seq"
BAD_TIME = "bad-time"
BAD_PAYLOAD = "bad-payload"
TOO_LARGE = "too-large"
WRONG_COMMUNITY = "wrong-community"
FORKED_AUTHOR = "forked-author"
OVER_LIMIT = "over-limit"  # protocol 2: an order or genesis beyond the charter's limits
# Not a verdict on the action: the receiver cannot hold it now (its pending space for that author
# or in total is full). It stored nothing; the sender keeps the action and sends it again once
# the receiver holds its predecessors (anti-entropy does this by itself).
PENDING_FULL = "pending-full"

REASONS = (
    BAD_ENCODING,
    BAD_SIGNATURE,
    BAD_LINK,
    BAD_SEQ,
    BAD_TIME,
    BAD_PAYLOAD,
    TOO_LARGE,
    WRONG_COMMUNITY,
    FORKED_AUTHOR,
    OVER_LIMIT,
    PENDING_FULL,
)


class Invalid(ValueError):
    """An action that fails validation. `reason` is one of `REASONS`; `detail` is for humans."""

    def __init__(self, reason: str, detail: str = "") -> None:
        assert reason in REASONS, reason
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
