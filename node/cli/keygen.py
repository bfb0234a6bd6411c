"""`picogrid keygen FILE`: make a key of one's own, for example an auditor's."""

from __future__ import annotations

import argparse
from pathlib import Path

from ledger.keys import Identity, KeyFileError, save_identity
from node.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    """Add `picogrid keygen` to the command line."""
    p = sub.add_parser("keygen", help="make a new Ed25519 key file (for an auditor)",
                       description="Write a new Ed25519 key to FILE (mode 0600, never "
                                   "overwritten) and print its public key. Give the public key "
                                   "to the community's admin (`picogrid charter --auditor HEX`), "
                                   "then audit with `picogrid audit URL --key FILE`.")
    p.add_argument("file", metavar="FILE", type=Path)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write a fresh key and print its public half."""
    identity = Identity.generate()
    try:
        save_identity(identity, args.file)
    except (KeyFileError, OSError) as exc:
        raise UserError(str(exc)) from None
    print(identity.agent_hex)
    return 0
