"""Redis Cluster key slots: which of the 16,384 slots a key lives in (CRC16/XMODEM of its hash tag).

Pure functions, the same as Redis's `keyHashSlot` (cluster.c): if the key holds `{...}` with at
least one character inside, only that part is hashed, so keys that share a tag share a slot.
"""

from __future__ import annotations

SLOTS = 16384


def _table() -> list[int]:
    out = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        out.append(crc & 0xFFFF)
    return out


_CRC16 = _table()


def crc16(data: bytes) -> int:
    """CRC16/XMODEM (poly 0x1021, init 0): crc16(b"123456789") == 0x31C3."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC16[((crc >> 8) ^ byte) & 0xFF]
    return crc


def hash_tag(key: bytes) -> bytes:
    """The part of the key that is hashed: hash_tag(b"gw:{7}:c:d1:math") == b"7"; no `{x}`: the whole key."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            return key[start + 1:end]
    return key


def key_slot(key: bytes | str) -> int:
    """key_slot("foo") == 12182 (Redis's CLUSTER KEYSLOT foo)."""
    raw = key if isinstance(key, bytes) else key.encode()
    return crc16(hash_tag(raw)) % SLOTS
