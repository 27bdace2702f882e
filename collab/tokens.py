"""Token-list helpers shared by the trainer (torch) and the llama.cpp sampler: no heavy imports."""

from __future__ import annotations


def common_prefix_len(rows: list[list[int]]) -> int:
    """Length of the longest common prefix of token lists."""
    first = rows[0]
    k = min(len(r) for r in rows)
    for r in rows[1:]:
        k = next((i for i in range(k) if r[i] != first[i]), k)
    return k


def shared_prefix_len(rows: list[list[int]], min_len: int = 1) -> int:
    """The common prefix that can run once for all rows: each row keeps at least its last token
    (its position's output is still needed); 0 when that is shorter than `min_len`."""
    k = min(common_prefix_len(rows), min(len(r) for r in rows) - 1)
    return k if k >= min_len else 0
