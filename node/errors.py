"""Errors the command line prints without a traceback."""


class UserError(Exception):
    """A problem the user can fix (bad flag, missing file, unreachable URL)."""


class NotSigned(Exception):
    """Our own action was not signed, for a reason the node names and reports (a full disk, a
    clock set off); `reason` is one of the codes in docs/troubleshooting.md."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
