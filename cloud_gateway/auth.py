"""API keys: one per device, one or more admin keys; only SHA-256 hashes are stored.

Keys are 256-bit random tokens (`secrets.token_urlsafe(32)`), so a plain SHA-256 is enough to
make a stolen keys file useless (no password-style KDF needed: nothing to brute-force). Keys
file (TOML), written by `dagrpo gateway add-device`:

    [devices]
    edge-1 = "sha256:<hex>"
    [admins]
    ops = "sha256:<hex>"

A running gateway reloads the file on SIGHUP and when it changes (`KeyRing.reload`), so
`dagrpo gateway revoke NAME` takes a key away without a restart. The file is replaced
atomically: written to a fresh `mkstemp` file (O_EXCL, 0600, never a symlink's target) in the
same directory, fsynced, renamed over the old one.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
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
    """Lookup from a presented key to the device (or admin) it belongs to; `reload` swaps the
    whole table at once (a call sees the old keys or the new ones, never a mix)."""

    def __init__(self, devices: dict[str, str], admins: dict[str, str], path: Path | None = None):
        self._by_hash = _index(devices, admins)
        self.path = path
        self._stamp = _stamp(path) if path else None

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        devices, admins = _read(Path(path))
        return cls(devices, admins, Path(path))

    def identify(self, key: str) -> Principal | None:
        return self._by_hash.get(hash_key(key))

    def names(self) -> tuple[int, int]:
        """(devices, admins) with a key."""
        admins = sum(p.admin for p in self._by_hash.values())
        return len(self._by_hash) - admins, admins

    def reload(self, only_if_changed: bool = False) -> bool:
        """Read the keys file again (True) or, with `only_if_changed`, only when its inode, size or
        mtime moved. A file that fails to parse raises and leaves the keys in force unchanged."""
        stamp = _stamp(self.path)
        if only_if_changed and stamp == self._stamp:
            return False
        self._by_hash = _index(*_read(self.path))
        self._stamp = stamp
        return True


def _index(devices: dict[str, str], admins: dict[str, str]) -> dict[str, Principal]:
    by_hash: dict[str, Principal] = {}
    for admin, table in ((False, devices), (True, admins)):
        for name, digest in table.items():
            if not NAME_RE.match(name):
                raise ValueError(f"keys file: bad name {name!r} (must match {NAME_RE.pattern})")
            if not digest.startswith("sha256:") or len(digest) != 7 + 64:
                raise ValueError(f"keys file: {name!r} needs a 'sha256:<64 hex>' hash")
            by_hash[digest] = Principal(name, admin)
    return by_hash


def _read(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    if not path.is_file():
        raise FileNotFoundError(f"keys file not found: {path} (create it with `dagrpo gateway add-device`)")
    data = tomllib.loads(path.read_text())
    return data.get("devices", {}), data.get("admins", {})


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def add_key(path: Path, name: str, admin: bool = False) -> str:
    """Create a key for `name`, store its hash in the keys file, return the key (shown once)."""
    if not NAME_RE.match(name):
        raise ValueError(f"name {name!r} must match {NAME_RE.pattern}")
    path = Path(path)
    devices, admins = _read(path) if path.is_file() else ({}, {})
    if name in devices or name in admins:
        raise ValueError(f"{name!r} already has a key in {path}")
    key = new_key()
    (admins if admin else devices)[name] = hash_key(key)
    _write(path, devices, admins)
    return key


def revoke_key(path: Path, name: str) -> bool:
    """Remove `name`'s key (device or admin) from the keys file; False if it had none."""
    path = Path(path)
    devices, admins = _read(path)
    if name not in devices and name not in admins:
        return False
    devices.pop(name, None)
    admins.pop(name, None)
    _write(path, devices, admins)
    return True


def _write(path: Path, devices: dict[str, str], admins: dict[str, str]) -> None:
    lines = ["# Gateway API key hashes (dagrpo gateway add-device). Keys themselves are not stored.",
             "[devices]", *(f'"{n}" = "{h}"' for n, h in devices.items()),
             "", "[admins]", *(f'"{n}" = "{h}"' for n, h in admins.items()), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # O_EXCL, 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # replaces a symlink at `path` itself, never writes through it
    except BaseException:
        os.unlink(tmp)
        raise
