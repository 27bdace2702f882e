"""API keys: one per device, one or more admin keys; only SHA-256 hashes are stored.

Keys are 256-bit random tokens (`secrets.token_urlsafe(32)`), so a plain SHA-256 is enough to
make a stolen keys file useless (no password-style KDF needed: nothing to brute-force). Keys
file (TOML), written by `dagrpo gateway add-device`:

    [devices]
    edge-1 = "sha256:<hex>"
    [admins]
    ops = "sha256:<hex>"
"""

from __future__ import annotations

import hashlib
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path

from cloud_gateway.store.base import NAME_RE

KEY_PREFIX = "dgk_"  # makes leaked keys greppable


@dataclass(frozen=True)
class Principal:
    name: str
    admin: bool


def hash_key(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class KeyRing:
    """Lookup from a presented key to the device (or admin) it belongs to."""

    def __init__(self, devices: dict[str, str], admins: dict[str, str]):
        self._by_hash: dict[str, Principal] = {}
        for admin, table in ((False, devices), (True, admins)):
            for name, digest in table.items():
                if not NAME_RE.match(name):
                    raise ValueError(f"keys file: bad name {name!r} (must match {NAME_RE.pattern})")
                if not digest.startswith("sha256:") or len(digest) != 7 + 64:
                    raise ValueError(f"keys file: {name!r} needs a 'sha256:<64 hex>' hash")
                self._by_hash[digest] = Principal(name, admin)

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        if not Path(path).is_file():
            raise FileNotFoundError(f"keys file not found: {path} (create it with `dagrpo gateway add-device`)")
        data = tomllib.loads(Path(path).read_text())
        return cls(data.get("devices", {}), data.get("admins", {}))

    def identify(self, key: str) -> Principal | None:
        return self._by_hash.get(hash_key(key))


def add_key(path: Path, name: str, admin: bool = False) -> str:
    """Create a key for `name`, store its hash in the keys file, return the key (shown once)."""
    if not NAME_RE.match(name):
        raise ValueError(f"name {name!r} must match {NAME_RE.pattern}")
    path = Path(path)
    data = tomllib.loads(path.read_text()) if path.is_file() else {}
    devices, admins = data.get("devices", {}), data.get("admins", {})
    if name in devices or name in admins:
        raise ValueError(f"{name!r} already has a key in {path}")
    key = new_key()
    (admins if admin else devices)[name] = hash_key(key)
    lines = ["# Gateway API key hashes (dagrpo gateway add-device). Keys themselves are not stored.",
             "[devices]", *(f'"{n}" = "{h}"' for n, h in devices.items()),
             "", "[admins]", *(f'"{n}" = "{h}"' for n, h in admins.items()), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines))
    tmp.chmod(0o600)
    tmp.replace(path)
    return key
