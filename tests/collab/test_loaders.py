"""Dataset loaders on hand-written fixtures in each real schema, file tasks, and loud errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from collab.tasks import FileTask, FileTaskSpec, load_task_file
from collab.tasks.base import SPLITS
from collab.tasks.loaders import DatasetError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "datasets"


def load(name: str, fmt: str):
    return load_task_file(FIXTURES / name, fmt)


def test_math_lighteval():
    exs = load("math_lighteval.jsonl", "math_lighteval")
    assert [e.id for e in exs] == ["math_lighteval/0", "math_lighteval/1", "math_lighteval/2", "math_lighteval/3"]
    assert [e.answer for e in exs] == ["11", "\\frac{1}{2}", "7", "6"]  # last \boxed{}, nested braces kept
    assert [e.difficulty for e in exs] == [1, 2, 3, 3]  # "Level ?" -> 3
    assert all(e.kind == "math" and e.task == "math_lighteval" for e in exs)
    assert exs[0].question == "What is $3 + 4 \\cdot 2$?" and exs[0].meta["type"] == "Prealgebra"
    # 6 solution lines merged into at most 4 steps, nothing lost
    assert len(exs[2].solution.splitlines()) == 3 and "Hence $x = \\boxed{7}$." in exs[2].solution


def test_math500():
    exs = load("math500.jsonl", "math500")
    assert [e.id for e in exs] == ["math500/test/prealgebra/101.json", "math500/test/prealgebra/202.json",
                                   "math500/test/algebra/303.json"]
    assert [(e.answer, e.difficulty, e.meta["subject"]) for e in exs] == [
        ("7", 1, "Prealgebra"), ("1", 2, "Prealgebra"), ("4", 4, "Algebra")]


def test_arc_original_schema():
    exs = load("arc_original.jsonl", "arc")
    assert [(e.id, e.answer) for e in exs] == [("arc/Fixture_ARC_001", "A"), ("arc/Fixture_ARC_002", "C"),
                                               ("arc/Fixture_ARC_003", "A")]
    assert exs[1].choices == ("rubber band", "glass marble", "copper wire", "plastic cup")  # labels 1..4
    assert len(exs[2].choices) == 3 and exs[0].kind == "mcq"
    assert exs[1].solution == "The answer is C: copper wire."


def test_arc_hf_schema_jsonl_and_parquet(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    exs = load("arc_hf.jsonl", "arc")
    assert [(e.answer, len(e.choices)) for e in exs] == [("B", 4), ("C", 4), ("D", 5)]
    assert exs[0].question == "Which planet is closest to the Sun?" and exs[0].choices[1] == "Mercury"
    rows = [json.loads(line) for line in (FIXTURES / "arc_hf.jsonl").read_text().splitlines()]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "arc.parquet")
    assert load_task_file(tmp_path / "arc.parquet", "arc") == exs


def test_mmlu():
    exs = load("mmlu.jsonl", "mmlu")
    assert [(e.id, e.answer) for e in exs] == [
        ("mmlu/high_school_chemistry/0", "B"), ("mmlu/literature/1", "C"),
        ("mmlu/elementary_mathematics/2", "C"),  # letter answer accepted
        ("mmlu/all/3", "B")]  # auxiliary_train row nested under "train"
    assert exs[3].choices == ("oxygen", "carbon dioxide", "helium", "nitrogen")


def test_taco_stdio_and_call_based():
    exs = load("taco.jsonl", "taco")
    assert [(e.kind, e.difficulty, e.entry_point) for e in exs] == [
        ("code", 1, ""), ("code", 2, ""), ("code", 3, "maxProduct"), ("code", 3, "split_pair")]
    assert json.loads(exs[0].tests) == {"stdio": [["1 2\n", "3\n"], ["10 -3\n", "7\n"], ["0 0\n", "0\n"]]}
    assert json.loads(exs[1].tests)["stdio"][0] == ["2\nab\ncd", "cd\nab"]  # list of lines joined
    assert "standard input" in exs[0].question and "Start from this code" in exs[2].question
    for ex in exs[2:]:  # call-based tests: trusted fixture code, run in-process
        exec(ex.solution + "\n" + ex.tests, {})
        with pytest.raises(AssertionError):
            exec(f"def {ex.entry_point}(*a):\n    return 0\n" + ex.tests, {})


@pytest.mark.integration
def test_taco_solutions_pass_in_the_real_sandbox():
    from collab.grading import stdio_cases
    from collab.sandbox import run_code_tests, run_stdio_tests

    exs = load("taco.jsonl", "taco")
    for ex in exs[:2]:
        assert run_stdio_tests(ex.solution, stdio_cases(ex.tests)).passed, ex.id
    assert not run_stdio_tests("print(0)", stdio_cases(exs[0].tests)).passed
    for ex in exs[2:]:
        result = run_code_tests(ex.solution, ex.tests, entry_point=ex.entry_point)
        assert result.passed, (ex.id, result.reason, result.stderr)


# ---- errors name the file, the line and the field ------------------------------------------------------

def write(tmp_path: Path, name: str, rows: list) -> Path:
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_missing_field_names_file_line_and_field(tmp_path):
    good = json.loads((FIXTURES / "mmlu.jsonl").read_text().splitlines()[0])
    bad = {k: v for k, v in good.items() if k != "choices"}
    path = write(tmp_path, "m.jsonl", [good, "", bad])
    with pytest.raises(DatasetError, match=r"m\.jsonl:3: missing field 'choices' \(mmlu schema\)"):
        load_task_file(path, "mmlu")


@pytest.mark.parametrize(("rows", "fmt", "message"), [
    (["{not json"], "arc", r"x\.jsonl:1: invalid JSON"),
    ([{"id": "a", "question": {"stem": "q", "choices": [{"label": "A"}]}, "answerKey": "A"}], "arc", "missing field 'text'"),
    ([{"id": "a", "question": "q", "choices": {"text": ["x", "y"], "label": ["A", "B"]}, "answerKey": "E"}], "arc",
     "answerKey 'E' is not one of the labels"),
    ([{"problem": "p", "level": "Level 1", "type": "t", "solution": "no box"}], "math_lighteval", "no \\\\boxed"),
    ([{"question": "q", "subject": "s", "choices": ["a", "b"], "answer": 5}], "mmlu", "not a valid choice"),
    ([{"question": "q", "solutions": "[]", "input_output": "{\"inputs\": [\"1\"]}"}], "taco", "missing field 'outputs'"),
    ([[1, 2]], "mmlu", "expected a JSON object"),
])
def test_malformed_rows_fail_loudly(tmp_path, rows, fmt, message):
    with pytest.raises(DatasetError, match=message):
        load_task_file(write(tmp_path, "x.jsonl", rows), fmt)


def test_unknown_format_and_file_type(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset format 'gsm8k'; expected one of math_lighteval"):
        load_task_file(FIXTURES / "mmlu.jsonl", "gsm8k")
    with pytest.raises(DatasetError, match="unsupported file type '.csv'"):
        load_task_file(write(tmp_path, "x.csv", ["a,b"]), "mmlu")
    with pytest.raises(DatasetError, match="no such file"):
        load_task_file(tmp_path / "absent.jsonl", "mmlu")


# ---- file-backed tasks -------------------------------------------------------------------------------

def test_file_task_single_file_is_split_by_content():
    task = FileTask("fx-arc", FIXTURES / "arc_hf.jsonl", "arc")
    parts = {s: task.examples(s) for s in SPLITS}
    ids = [e.id for s in SPLITS for e in parts[s]]
    assert sorted(ids) == ["fx-arc/Fixture_ARC_101", "fx-arc/Fixture_ARC_102", "fx-arc/Fixture_ARC_103"]
    assert all(e.task == "fx-arc" for s in SPLITS for e in parts[s])
    assert task.get("fx-arc/Fixture_ARC_102").answer == "C"


def test_file_task_split_files_and_seeded_order():
    task = FileTask("fx-math", {"train": FIXTURES / "math_lighteval.jsonl", "test": FIXTURES / "math500.jsonl"}, "math500")
    with pytest.raises(DatasetError, match=r"math_lighteval\.jsonl:1: missing field 'unique_id'"):
        task.examples("test")  # every split file is read on first use; lighteval rows are not math500 rows
    task = FileTask("fx-mmlu", {"train": FIXTURES / "mmlu.jsonl"}, "mmlu")
    assert [e.id for e in task.examples("train", n=2)] == ["fx-mmlu/high_school_chemistry/0", "fx-mmlu/literature/1"]
    shuffled = task.examples("train", seed=5)
    assert shuffled == task.examples("train", seed=5) and sorted(e.id for e in shuffled) == sorted(e.id for e in task.examples("train"))
    with pytest.raises(KeyError, match="has no 'val' file"):
        task.examples("val")


def test_file_task_spec_validates_fields(tmp_path):
    spec = FileTaskSpec(name="arc", fmt="arc", path=FIXTURES / "arc_original.jsonl")
    assert spec.build().kind == "mcq"
    with pytest.raises(ValidationError, match="fmt"):
        FileTaskSpec(name="x", fmt="gsm8k", path=FIXTURES / "mmlu.jsonl")
    with pytest.raises(ValidationError, match="does not exist"):
        FileTaskSpec(name="x", fmt="mmlu", path=tmp_path / "absent.jsonl")
    with pytest.raises(ValidationError, match="extra"):
        FileTaskSpec(name="x", fmt="mmlu", path=FIXTURES / "mmlu.jsonl", split="train")
