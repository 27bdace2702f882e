"""A uniform number in [0, 1) fixed by a string: the seeded, order-free draws of cloud and routers.

The reference cloud (is this answer correct?), the naive router (offload this query?) and the
warm-up targets (a help request here?) each draw from their own key prefix.
"""

from __future__ import annotations

import hashlib


def hash_uniform(text: str) -> float:
    """The first 8 bytes of SHA-256(text) as a fraction of 2**64; the same text, the same number."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64
