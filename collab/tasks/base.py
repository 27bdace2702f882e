"""The task data model shared by every runtime.

An `Example` is one question with everything needed to grade it and to answer it as the
reference cloud would. Built-in tasks are seeded generators; real datasets come from loaders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

Kind = Literal["math", "mcq", "code"]
Split = Literal["train", "val", "test"]
SPLITS: tuple[str, ...] = ("train", "val", "test")

# Paper table 3: limit on reasoning steps per task kind.
STEP_LIMITS: dict[str, int] = {"math": 4, "code": 6, "mcq": 4}


@dataclass(frozen=True)
class Example:
    id: str  # stable and unique across splits, e.g. "math/test/17"
    task: str  # task name in the registry, e.g. "math", "science", "humaneval"
    kind: Kind  # decides the prompt template, the grader and the step limit
    question: str
    answer: str = ""  # math: reference answer; mcq: the correct letter ("A".."J"); code: ""
    choices: tuple[str, ...] = ()  # mcq only
    tests: str = ""  # code only: Python test code run after the program (asserts / check())
    entry_point: str = ""  # code only: the function under test
    solution: str = ""  # known solution: worked steps (math/mcq) or reference code (code)
    difficulty: int = 1  # 1 (easiest) .. 5
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def step_limit(self) -> int:
        return STEP_LIMITS[self.kind]


class Task(Protocol):
    """A named source of examples with disjoint, deterministic splits."""

    name: str
    kind: Kind

    def examples(self, split: Split, n: int | None = None, seed: int = 0) -> list[Example]:
        """`n` examples of `split` (all when None), identical for identical arguments."""
        ...
