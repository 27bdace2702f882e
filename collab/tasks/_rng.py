"""Seeding, ids, content-disjoint splits and the task class shared by the built-in generators.

Every built-in example is a pure function of its id `"{task}/{split}/{index}[@seed]"`: the
generator draws from `random.Random(f"{task}/{split}/{index}/{seed}/{attempt}")` (string seeds
are hashed with SHA-512 by `random`, so they do not depend on PYTHONHASHSEED) and keeps the first
attempt whose *content key* hashes into the requested split. The content key names the problem
itself (the family and its numbers or facts, not the cosmetic names and wording), so the same
problem can never appear in two splits, whatever template dresses it.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from collab.prompts import CHOICE_LETTERS
from collab.tasks.base import Example, Kind

T = TypeVar("T")

# Share of the content-hash space per split, in twentieths: 80% train, 10% val, 10% test.
_SPLIT_BUCKETS: dict[str, range] = {"train": range(0, 16), "val": range(16, 18), "test": range(18, 20)}
MAX_ATTEMPTS = 400  # val/test own ~10% of the keys: 400 misses in a row means a level has none there

_ID_RE = re.compile(r"^(?P<task>[^/]+)/(?P<split>train|val|test)/(?P<index>\d+)(?:@(?P<seed>\d+))?$")


def split_of(key: str) -> str:
    """The split that owns a content key (deterministic, ~80/10/10)."""
    bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % 20
    return next(s for s, r in _SPLIT_BUCKETS.items() if bucket in r)


def make_id(task: str, split: str, index: int, seed: int = 0) -> str:
    """`math/test/17`, or `math/test/17@3` for a non-zero seed."""
    return f"{task}/{split}/{index}" + (f"@{seed}" if seed else "")


def parse_id(example_id: str) -> tuple[str, str, int, int]:
    """Inverse of `make_id`: (task, split, index, seed). Raises ValueError on other shapes."""
    m = _ID_RE.match(example_id)
    if not m:
        raise ValueError(f"not a generated example id (task/split/index[@seed]): {example_id!r}")
    return m["task"], m["split"], int(m["index"]), int(m["seed"] or 0)


def draw_in_split(
    task: str, split: str, index: int, seed: int, make: Callable[[random.Random], tuple[str, T]]
) -> T:
    """Call `make(rng) -> (content_key, value)` with fresh seeded RNGs until the key is in `split`."""
    if split not in _SPLIT_BUCKETS:
        raise ValueError(f"unknown split {split!r}; expected one of {tuple(_SPLIT_BUCKETS)}")
    for attempt in range(MAX_ATTEMPTS):
        key, value = make(random.Random(f"{task}/{split}/{index}/{seed}/{attempt}"))
        if split_of(f"{task}|{key}") == split:
            return value
    raise RuntimeError(f"{task}: no content in split {split!r} after {MAX_ATTEMPTS} draws (index {index})")


def place_choices(rng: random.Random, correct: str, distractors: Sequence[str]) -> tuple[tuple[str, ...], str]:
    """Four choices with the correct one at a uniformly random position; returns (choices, letter).

    Raises when the distractors are not three distinct strings different from the answer, so a
    generator bug cannot produce a question with two right answers.
    """
    wrong = list(dict.fromkeys(d for d in distractors if d != correct))[:3]
    if len(wrong) < 3:
        raise ValueError(f"need 3 distinct distractors for {correct!r}, got {list(distractors)!r}")
    rng.shuffle(wrong)
    pos = rng.randrange(4)
    choices = wrong[:pos] + [correct] + wrong[pos:]
    return tuple(choices), CHOICE_LETTERS[pos]


def pick(rng: random.Random, items: Sequence[T]) -> T:
    return items[rng.randrange(len(items))]


@dataclass(frozen=True)
class GeneratedTask:
    """A built-in task: `build(rng, level) -> (content_key, draft)` behind seeded ids.

`finish(draft)` turns the kept draft into Example fields (a dict); it runs once per example, not
once per rejected draw, so a generator can defer its expensive part (computing test outputs).

    The level of example `index` is `levels[index % len(levels)]`, so every split mixes the
    levels evenly and an id alone fixes the level. `sizes` is what `examples(split)` returns with
    `n=None` (a generator has no natural end); any index is valid.
    """

    name: str
    kind: Kind
    build: Callable[[random.Random, int], tuple[str, object]]
    finish: Callable[[object], dict] = dict
    levels: tuple[int, ...] = (1, 2, 3, 4, 5)
    sizes: dict[str, int] = field(default_factory=lambda: {"train": 5000, "val": 500, "test": 500})

    def __post_init__(self) -> None:
        if not self.levels or any(lv not in range(1, 6) for lv in self.levels):
            raise ValueError(f"{self.name}: levels must be a non-empty subset of 1..5, got {self.levels}")

    def example(self, split: str, index: int, seed: int = 0) -> Example:
        level = self.levels[index % len(self.levels)]
        draft = draw_in_split(self.name, split, index, seed, lambda rng: self.build(rng, level))
        fields = self.finish(draft)
        return Example(id=make_id(self.name, split, index, seed), task=self.name, kind=self.kind,
                       difficulty=level, **fields)

    def examples(self, split: str, n: int | None = None, seed: int = 0) -> list[Example]:
        if split not in self.sizes:
            raise ValueError(f"unknown split {split!r}; expected one of {tuple(self.sizes)}")
        count = self.sizes[split] if n is None else n
        return [self.example(split, i, seed) for i in range(count)]

    def get(self, example_id: str) -> Example:
        task, split, index, seed = parse_id(example_id)
        if task != self.name:
            raise KeyError(f"example {example_id!r} does not belong to task {self.name!r}")
        return self.example(split, index, seed)


def fmt_num(x: float) -> str:
    """Canonical number text: `700`, `3.5`, `0.125` (at most 3 decimals, no trailing zeros)."""
    text = f"{round(x, 3):.3f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def numeric_distractors(rng: random.Random, correct: float, mistakes: Sequence[float]) -> list[str]:
    """Wrong numbers: the typical mistakes first, then nearby values, all distinct from `correct`."""
    right = fmt_num(correct)
    out = [t for t in dict.fromkeys(fmt_num(m) for m in mistakes) if t != right]
    step = max(abs(correct) * 0.1, 1.0)
    while len(out) < 3:
        cand = fmt_num(correct + step * rng.choice((-3, -2, -1, 1, 2, 3)) * rng.choice((1, 1.5)))
        if cand != right and cand not in out and (correct < 0 or not cand.startswith("-")):
            out.append(cand)
    return out[:3]


def mcq_fields(rng: random.Random, correct: str, distractors: Sequence[str], steps: Sequence[str],
               question: str, family: str) -> dict:
    """Example fields of a 4-way multiple-choice question with 1-4 worked steps."""
    choices, letter = place_choices(rng, correct, distractors)
    assert 1 <= len(steps) <= 4, steps  # generator invariant: the QA step limit is 4
    return {"question": question, "answer": letter, "choices": choices,
            "solution": "\n".join(steps), "meta": {"family": family, "answer_text": correct}}
