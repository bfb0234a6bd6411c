"""Errors the command line prints without a traceback."""


class UserError(Exception):
    """A problem the user can fix (bad flag, missing file, unreachable URL)."""
