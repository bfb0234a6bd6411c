"""Ed25519 identities: an agent's id is its public key (64 lowercase hex characters in text)."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import nacl.exceptions
import nacl.signing


class KeyFileError(Exception):
    """A key file is missing, malformed, or readable by other users."""


@dataclass(frozen=True, slots=True)
class Identity:
    """A signing key and the agent id (public key) it belongs to."""

    signing_key: nacl.signing.SigningKey

    @classmethod
    def generate(cls) -> Identity:
        return cls(nacl.signing.SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        return cls(nacl.signing.SigningKey(seed))

    @property
    def agent(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    @property
    def agent_hex(self) -> str:
        return self.agent.hex()

    def sign(self, message: bytes) -> bytes:
        return self.signing_key.sign(message).signature

    def __repr__(self) -> str:  # never show the secret
        return f"Identity(agent={self.agent_hex})"


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when `signature` is `public_key`'s Ed25519 signature of exactly `message`."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
        return False
    return True


def parse_agent_hex(text: str) -> bytes:
    """An agent id or hash from its 64-character lowercase hex form; ValueError otherwise."""
    if len(text) != 64 or text != text.lower():
        raise ValueError(f"expected 64 lowercase hex characters, got {text[:80]!r}")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"not hex: {text[:80]!r}") from None


def save_identity(identity: Identity, path: Path) -> None:
    """Write the 32-byte seed as hex, mode 0600, refusing to overwrite an existing key."""
    path = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path} already exists; refusing to overwrite an identity") from None
    with os.fdopen(fd, "w") as f:
        f.write(bytes(identity.signing_key).hex() + "\n")
        f.flush()
        os.fsync(f.fileno())


def load_identity(path: Path) -> Identity:
    """Read a key written by `save_identity`; refuse one that other users can read."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise KeyFileError(f"no key file at {path}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"{path} is readable by other users (mode {stat.S_IMODE(mode):o}); "
            f"run: chmod 600 {path}"
        )
    text = path.read_text().strip()
    try:
        seed = bytes.fromhex(text)
    except ValueError:
        raise KeyFileError(f"{path} does not hold a hex key") from None
    if len(seed) != 32:
        raise KeyFileError(f"{path} does not hold a 32-byte Ed25519 seed")
    return Identity.from_seed(seed)
