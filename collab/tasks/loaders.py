"""Loaders for the real datasets' file formats (local JSONL or Parquet), and file-backed tasks.

Formats (`fmt`) and the fields each row must have:

- `math_lighteval`: `problem, level ("Level 3"), type, solution`; the answer is the last `\\boxed{}`
  of `solution`. `math500`: `problem, solution, answer, subject, level (int), unique_id`.
- `arc`: the original JSONL (`id, question: {stem, choices: [{text, label}]}, answerKey`) or the
  Hugging Face flat schema (`id, question, choices: {text: [...], label: [...]}, answerKey`).
  Labels may be letters or digits; the answer becomes the letter of the key's position.
- `mmlu`: `question, subject, choices: [...], answer` (an index; a letter is accepted too). A row
  nested as `{"train": {...}}` (the auxiliary_train export) is unwrapped.
- `taco`: `question, solutions (JSON list of str), input_output (JSON str: inputs, outputs and
  optionally fn_name), difficulty`. Stdio problems get `tests = {"stdio": [[input, output], ...]}`
  as JSON; call-based problems (fn_name) get assert tests calling the function, or the method of
  `Solution()` when the program defines that class (LeetCode style), comparing like TACO's own
  checker (a tuple equals a list; a one-element expected list also matches its element).

Departures from the raw data, all deliberate: worked solutions longer than the step limit are
merged into at most that many lines (the reference cloud writes one `Step k:` per line);
multiple-choice rows without a worked solution get the one-line "The answer is X: text.";
datasets without difficulty labels (ARC, MMLU) get difficulty 3, MATH `Level ?` too.
Errors name the file, the line (JSONL) or row (Parquet) and the missing field.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

from collab.prompts import CHOICE_LETTERS
from collab.tasks._rng import split_of
from collab.tasks.base import SPLITS, STEP_LIMITS, Example, Kind

Format = Literal["math_lighteval", "math500", "arc", "mmlu", "taco"]
FORMATS: tuple[str, ...] = ("math_lighteval", "math500", "arc", "mmlu", "taco")
KIND_OF: dict[str, Kind] = {"math_lighteval": "math", "math500": "math", "arc": "mcq", "mmlu": "mcq", "taco": "code"}
UNKNOWN_DIFFICULTY = 3
_LEVELS = ("1", "2", "3", "4", "5")
TACO_DIFFICULTY = {"EASY": 1, "MEDIUM": 2, "MEDIUM_HARD": 3, "HARD": 4, "VERY_HARD": 5}


class DatasetError(ValueError):
    """A dataset file that does not match its declared format; the message says where."""


class _Row:
    """One record plus where it came from, for error messages."""

    def __init__(self, data: object, where: str, fmt: str, index: int):
        if not isinstance(data, dict):
            raise DatasetError(f"{where}: expected a JSON object ({fmt} schema), got {type(data).__name__}")
        self.data, self.where, self.fmt, self.index = data, where, fmt, index

    def get(self, name: str, kind: type | tuple[type, ...] = object, obj: dict | None = None) -> object:
        data = self.data if obj is None else obj
        if name not in data or data[name] is None:
            raise DatasetError(f"{self.where}: missing field {name!r} ({self.fmt} schema)")
        if not isinstance(data[name], kind):
            raise DatasetError(f"{self.where}: field {name!r} has type {type(data[name]).__name__} ({self.fmt} schema)")
        return data[name]

    def fail(self, message: str) -> DatasetError:
        return DatasetError(f"{self.where}: {message} ({self.fmt} schema)")


def read_records(path: str | Path) -> Iterator[tuple[str, object]]:
    """(location, record) for each JSON line of a .jsonl/.json file or each row of a .parquet file."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq  # heavy: only when a Parquet file is actually read

        for i, row in enumerate(pq.read_table(path).to_pylist(), 1):
            yield f"{path}: row {i}", row
        return
    if path.suffix not in (".jsonl", ".json"):
        raise DatasetError(f"{path}: unsupported file type {path.suffix!r}; expected .jsonl, .json or .parquet")
    with path.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield f"{path}:{i}", json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"{path}:{i}: invalid JSON ({exc.msg})") from None


def load_task_file(path: str | Path, fmt: str, task: str | None = None) -> list[Example]:
    """Every example of a dataset file; `task` (default: `fmt`) names the task and prefixes ids."""
    if fmt not in PARSERS:
        raise ValueError(f"unknown dataset format {fmt!r}; expected one of {', '.join(FORMATS)}")
    name = task or fmt
    return [PARSERS[fmt](_Row(rec, where, fmt, i), name) for i, (where, rec) in enumerate(read_records(path))]


def _math_lighteval(row: _Row, task: str) -> Example:
    from collab.extract import last_boxed  # collab.extract imports this package: import late

    solution = row.get("solution", str)
    answer = last_boxed(solution)
    if answer is None:
        raise row.fail("no \\boxed{...} answer in 'solution'")
    level = str(row.get("level", (str, int))).removeprefix("Level ").strip()
    return Example(id=f"{task}/{row.index}", task=task, kind="math", question=row.get("problem", str),
                   answer=answer, solution=_steps(solution, "math"),
                   difficulty=int(level) if level in _LEVELS else UNKNOWN_DIFFICULTY,
                   meta={"type": row.get("type", str), "level": row.data["level"]})


def _math500(row: _Row, task: str) -> Example:
    level = row.get("level", (int, str))
    return Example(id=f"{task}/{row.get('unique_id', str)}", task=task, kind="math",
                   question=row.get("problem", str), answer=str(row.get("answer", (str, int))).strip(),
                   solution=_steps(row.get("solution", str), "math"),
                   difficulty=int(level) if str(level) in _LEVELS else UNKNOWN_DIFFICULTY,
                   meta={"subject": row.get("subject", str)})


def _arc(row: _Row, task: str) -> Example:
    question = row.get("question", (str, dict))
    if isinstance(question, dict):  # original AI2 JSONL
        stem = row.get("stem", str, obj=question)
        items = row.get("choices", list, obj=question)
        texts = [str(row.get("text", object, obj=c)) for c in items]
        labels = [str(row.get("label", object, obj=c)) for c in items]
    else:  # Hugging Face flat schema
        stem = question
        choices = row.get("choices", dict)
        texts = [str(t) for t in row.get("text", list, obj=choices)]
        labels = [str(lb) for lb in row.get("label", list, obj=choices)]
    key = str(row.get("answerKey", (str, int))).strip()
    if key not in labels:
        raise row.fail(f"answerKey {key!r} is not one of the labels {labels}")
    return _mcq(row, task, f"{task}/{row.get('id', str)}", stem, texts, labels.index(key), {})


def _mmlu(row: _Row, task: str) -> Example:
    if set(row.data) == {"train"} and isinstance(row.data["train"], dict):
        row = _Row(row.data["train"], row.where, row.fmt, row.index)
    choices = [str(c) for c in row.get("choices", list)]
    answer = row.get("answer", (int, str))
    if isinstance(answer, str):
        answer = int(answer) if answer.isdigit() else CHOICE_LETTERS.find(answer.strip().upper())
    if not 0 <= answer < len(choices):
        raise row.fail(f"answer {row.data['answer']!r} is not a valid choice of {len(choices)}")
    subject = str(row.data.get("subject") or "all")
    return _mcq(row, task, f"{task}/{subject}/{row.index}", row.get("question", str), choices, answer, {"subject": subject})


def _mcq(row: _Row, task: str, ex_id: str, stem: str, texts: list[str], correct: int, meta: dict) -> Example:
    if not 2 <= len(texts) <= len(CHOICE_LETTERS):
        raise row.fail(f"need 2..{len(CHOICE_LETTERS)} choices, got {len(texts)}")
    letter = CHOICE_LETTERS[correct]
    return Example(id=ex_id, task=task, kind="mcq", question=stem, answer=letter, choices=tuple(texts),
                   solution=f"The answer is {letter}: {texts[correct]}.", difficulty=UNKNOWN_DIFFICULTY, meta=meta)


def _taco(row: _Row, task: str) -> Example:
    try:
        io = json.loads(row.get("input_output", str))
        solutions = row.get("solutions", (str, list))
        solutions = json.loads(solutions) if isinstance(solutions, str) else solutions
    except json.JSONDecodeError as exc:
        raise row.fail(f"invalid JSON inside a field ({exc.msg})") from None
    inputs, outputs = row.get("inputs", list, obj=io), row.get("outputs", list, obj=io)
    if not inputs or len(inputs) != len(outputs):
        raise row.fail(f"input_output needs as many outputs as inputs (>= 1), got {len(inputs)} and {len(outputs)}")
    fn_name = io.get("fn_name") or ""
    question = row.get("question", str).rstrip()
    starter = (row.data.get("starter_code") or "").strip()
    if starter:
        question += f"\n\nStart from this code:\n{starter}"
    elif not fn_name:
        question += "\n\nRead the input from standard input and print the answer to standard output."
    tests = _call_tests(fn_name, inputs, outputs) if fn_name else json.dumps(
        {"stdio": [[_text(i), _text(o)] for i, o in zip(inputs, outputs)]})
    difficulty = TACO_DIFFICULTY.get(str(row.data.get("difficulty", "")).upper(), UNKNOWN_DIFFICULTY)
    return Example(id=f"{task}/{row.index}", task=task, kind="code", question=question, tests=tests,
                   entry_point=fn_name, solution=str(solutions[0]) if solutions else "", difficulty=difficulty,
                   meta={"source": row.data.get("source", ""), "difficulty": row.data.get("difficulty", "")})


def _text(value: object) -> str:
    """A TACO stdin/stdout entry: a string, or a list of lines."""
    return "\n".join(map(str, value)) if isinstance(value, list) else str(value)


_TACO_EQ = '''def _taco_eq(got, want):
    # TACO/APPS checker: tuples compare as lists; an expected [x] also accepts x.
    if isinstance(got, tuple):
        got = list(got)
    return got == want or (isinstance(want, list) and len(want) == 1 and got == want[0])


_taco_fn = getattr(Solution(), {fn!r}) if "Solution" in globals() else {fn}
'''


def _call_tests(fn_name: str, inputs: list, outputs: list) -> str:
    asserts = [f"assert _taco_eq(_taco_fn(*{args!r}), {want!r}), 'case {i}'"
               for i, (args, want) in enumerate(zip(inputs, outputs))]
    return _TACO_EQ.format(fn=fn_name) + "\n".join(asserts) + "\n"


def _steps(solution: str, kind: str) -> str:
    """At most STEP_LIMITS[kind] non-empty lines: longer solutions are merged into that many."""
    lines = [" ".join(line.split()) for line in solution.splitlines() if line.strip()]
    limit = STEP_LIMITS[kind]
    if len(lines) <= limit:
        return "\n".join(lines)
    size = -(-len(lines) // limit)  # ceil: lines per merged step
    return "\n".join(" ".join(lines[i:i + size]) for i in range(0, len(lines), size))


PARSERS: dict[str, Callable[[_Row, str], Example]] = {
    "math_lighteval": _math_lighteval, "math500": _math500, "arc": _arc, "mmlu": _mmlu, "taco": _taco,
}


@dataclass
class FileTask:
    """A task backed by dataset files: one per split, or one file split 80/10/10 by question hash.

    Files are read on first use. `examples(split, n, seed)` returns the file order for seed 0 and
    a seeded shuffle otherwise.
    """

    name: str
    path: str | Path | Mapping[str, str | Path]
    fmt: str
    kind: Kind = field(init=False)

    def __post_init__(self) -> None:
        if self.fmt not in KIND_OF:
            raise ValueError(f"task {self.name!r}: unknown dataset format {self.fmt!r}; expected one of {', '.join(FORMATS)}")
        if isinstance(self.path, Mapping) and not set(self.path) <= set(SPLITS):
            raise ValueError(f"task {self.name!r}: split files must be keyed by {SPLITS}, got {sorted(self.path)}")
        self.kind = KIND_OF[self.fmt]

    @cached_property
    def _splits(self) -> dict[str, list[Example]]:
        if isinstance(self.path, Mapping):
            return {s: load_task_file(p, self.fmt, self.name) for s, p in self.path.items()}
        out: dict[str, list[Example]] = {s: [] for s in SPLITS}
        for ex in load_task_file(self.path, self.fmt, self.name):
            out[split_of(f"{self.name}|{ex.question}")].append(ex)
        return out

    @cached_property
    def _by_id(self) -> dict[str, Example]:
        return {ex.id: ex for exs in self._splits.values() for ex in exs}

    def examples(self, split: str, n: int | None = None, seed: int = 0) -> list[Example]:
        if split not in self._splits:
            raise KeyError(f"task {self.name!r} has no {split!r} file (it has {sorted(self._splits)})")
        pool = list(self._splits[split])
        if seed:
            random.Random(f"{self.name}/{split}/{seed}").shuffle(pool)
        return pool if n is None else pool[:n]

    def get(self, example_id: str) -> Example:
        if example_id not in self._by_id:
            raise KeyError(f"no example {example_id!r} in task {self.name!r}")
        return self._by_id[example_id]


class FileTaskSpec(BaseModel):
    """Config entry for a file-backed task, e.g. `{name = "arc", fmt = "arc", path = "data/arc.jsonl"}`."""

    model_config = ConfigDict(extra="forbid")

    name: str
    """Registry name; examples get ids `"{name}/{dataset id}"`."""
    fmt: Format
    """Dataset schema: math_lighteval, math500, arc, mmlu or taco."""
    path: Path | dict[Literal["train", "val", "test"], Path]
    """One file (split 80/10/10 by question hash) or one file per split."""

    @field_validator("path")
    @classmethod
    def _exists(cls, value: Path | dict) -> Path | dict:
        for p in value.values() if isinstance(value, dict) else (value,):
            if not p.is_file():
                raise ValueError(f"dataset file {p} does not exist")
        return value

    def build(self) -> FileTask:
        return FileTask(self.name, self.path, self.fmt)

