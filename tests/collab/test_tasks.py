"""Built-in task generators and the registry: determinism, disjoint splits, levels, answers."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from functools import cache

import pytest

from collab.prompts import CHOICE_LETTERS
from collab.tasks import TASK_GROUPS, FileTask, get_example, get_task, list_tasks, register_task
from collab.tasks._rng import fmt_num, make_id, parse_id, place_choices, split_of
from collab.tasks.base import SPLITS, Example
from collab.tasks.knowledge import to_roman

GENERATED = ("math", "science", "code", "knowledge")
N = 100  # examples per split in the shared sample: 20 per level


@cache
def sample(task: str, split: str) -> tuple[Example, ...]:
    return tuple(get_task(task).examples(split, N))


# ---- helpers, hand-computed ------------------------------------------------------------------------

def test_ids_round_trip():
    assert make_id("math", "test", 17) == "math/test/17"
    assert make_id("math", "test", 17, seed=3) == "math/test/17@3"
    assert parse_id("math/test/17@3") == ("math", "test", 17, 3)
    assert parse_id("code/train/0") == ("code", "train", 0, 0)
    with pytest.raises(ValueError, match="not a generated example id"):
        parse_id("math/dev/1")


def test_fmt_num():
    assert [fmt_num(700.0), fmt_num(3.5), fmt_num(1 / 3), fmt_num(-0.0001), fmt_num(-13)] == ["700", "3.5", "0.333", "0", "-13"]


def test_to_roman():
    assert [to_roman(4), to_roman(9), to_roman(14), to_roman(1994), to_roman(3999)] == ["IV", "IX", "XIV", "MCMXCIV", "MMMCMXCIX"]


def test_place_choices_refuses_duplicate_distractors():
    import random

    with pytest.raises(ValueError, match="3 distinct distractors"):
        place_choices(random.Random(0), "4", ["4", "5", "5", "6"])
    choices, letter = place_choices(random.Random(0), "4", ["4", "5", "6", "7", "8"])
    assert sorted(choices) == ["4", "5", "6", "7"] and choices[CHOICE_LETTERS.index(letter)] == "4"


def test_split_of_is_roughly_80_10_10():
    counts = Counter(split_of(f"key{i}") for i in range(4000))
    assert 0.76 < counts["train"] / 4000 < 0.84 and 0.08 < counts["val"] / 4000 < 0.12


# ---- every generated task ---------------------------------------------------------------------------

@pytest.mark.parametrize("task", GENERATED)
def test_deterministic_and_regenerable_from_id(task):
    exs = sample(task, "test")
    assert get_task(task).examples("test", N) == list(exs)
    for ex in exs[:10]:
        assert get_example(ex.id) == ex
    seeded = get_task(task).examples("val", 3, seed=7)
    assert [e.id for e in seeded] == [f"{task}/val/{i}@7" for i in range(3)]
    assert get_example(seeded[2].id) == seeded[2]
    assert seeded != get_task(task).examples("val", 3)


@pytest.mark.parametrize("task", GENERATED)
def test_splits_are_disjoint_by_content(task):
    questions = {s: {e.question for e in sample(task, s)} for s in SPLITS}
    assert questions["train"].isdisjoint(questions["val"])
    assert questions["train"].isdisjoint(questions["test"])
    assert questions["val"].isdisjoint(questions["test"])
    assert all(len(q) > N // 2 for q in questions.values())  # and mostly distinct within a split


@pytest.mark.parametrize("task", GENERATED)
def test_levels_cycle_and_every_level_in_every_split(task):
    for split in SPLITS:
        exs = sample(task, split)
        assert [e.difficulty for e in exs[:10]] == [1, 2, 3, 4, 5] * 2
        assert all(e.task == task and e.kind == get_task(task).kind for e in exs)
        assert len({e.id for e in exs}) == N


@pytest.mark.parametrize("task", GENERATED)
def test_difficulty_means_more_work(task):
    """Longer worked solutions (steps, or lines of reference code) at higher levels."""
    exs = [e for s in SPLITS for e in sample(task, s)]
    mean = {lv: sum(len(e.solution.splitlines()) for e in exs if e.difficulty == lv) / 60 for lv in (1, 5)}
    assert mean[5] > mean[1] + 1, mean


def test_math_answers_and_steps_check_out():
    for ex in (e for s in SPLITS for e in sample("math", s)):
        steps = ex.solution.splitlines()
        assert ex.answer.isdigit() and 1 <= len(steps) <= 4
        assert ex.answer in steps[-1]
        for step in steps:  # "12 * 4 = 48": recompute every pure-arithmetic step
            m = re.fullmatch(r"([\d +*/-]+) = (\d+)", step)
            if m:
                assert eval(m[1].replace("/", "//")) == int(m[2]), (ex.id, step)
    levels = {lv: [e for e in sample("math", "train") if e.difficulty == lv] for lv in (1, 5)}
    assert all(len(e.solution.splitlines()) == 1 and int(e.answer) <= 40 for e in levels[1])
    assert all(len(e.solution.splitlines()) == 4 and int(e.answer) >= 10 for e in levels[5])


@pytest.mark.parametrize("task", ("science", "knowledge"))
def test_multiple_choice_well_formed_and_letters_uniform(task):
    exs = [e for s in SPLITS for e in sample(task, s)]
    for ex in exs:
        assert len(ex.choices) == 4 and len(set(ex.choices)) == 4, ex
        assert ex.choices[CHOICE_LETTERS.index(ex.answer)] == ex.meta["answer_text"]
        assert 1 <= len(ex.solution.splitlines()) <= 4
    letters = Counter(e.answer for e in exs)
    assert set(letters) == set("ABCD") and all(0.17 < c / len(exs) < 0.33 for c in letters.values()), letters


def test_some_generated_facts():
    qa = {e.question: e.meta["answer_text"] for s in SPLITS for e in sample("science", s) + sample("knowledge", s)}
    water = {q: a for q, a in qa.items() if "state of water" in q}
    assert water
    for q, a in water.items():
        temp = int(re.search(r"at (-?\d+) C", q)[1])
        assert a == ("solid" if temp < 0 else "liquid" if temp < 100 else "gas")
    romans = {q: a for q, a in qa.items() if "Roman numeral" in q}
    assert romans and all(to_roman(int(a)) == re.search(r"numeral (\w+) ", q)[1] for q, a in romans.items())


def test_code_reference_solutions_pass_and_tests_discriminate():
    for ex in (e for s in SPLITS for e in sample("code", s)):
        assert f"`{ex.entry_point}(" in ex.question and ex.tests.count("assert ") >= 4
        exec(ex.solution + "\n" + ex.tests, {})  # trusted generator code
        shown = re.search(r"returns `(.*)`$", ex.question, re.S)[1]
        for stub in ("None", shown):  # a constant function must fail
            with pytest.raises(AssertionError):
                exec(f"def {ex.entry_point}(*args, **kwargs):\n    return {stub}\n" + ex.tests, {})
    families = {e.meta["family"] for s in SPLITS for e in sample("code", s)}
    assert len(families) >= 20


@pytest.mark.integration
def test_code_references_pass_in_the_real_sandbox():
    from collab.sandbox import run_code_tests

    exs = sample("code", "test")[:5]  # one per level
    for ex in exs:
        result = run_code_tests(ex.solution, ex.tests, entry_point=ex.entry_point)
        assert result.passed, (ex.id, result.reason, result.stderr)
    wrong = run_code_tests(f"def {exs[4].entry_point}(*a):\n    return 0\n", exs[4].tests, exs[4].entry_point)
    assert not wrong.passed


def test_reference_cloud_writes_the_solution_in_format():
    from collab.extract import check_format
    from collab.reference import reference_completion
    from collab.scoring import score

    for task in GENERATED:
        for ex in sample(task, "val")[:5]:
            text = "<think>\n" + reference_completion(ex)
            assert check_format(text, ex.kind), (ex.id, text)
            if ex.kind != "code":  # code correctness needs the sandbox (integration test above)
                assert score(ex, text).correct, (ex.id, text)


# ---- registry ---------------------------------------------------------------------------------------

def test_registry_names_and_groups():
    assert set(list_tasks()) >= {"math", "science", "code", "knowledge", "humaneval"}
    assert TASK_GROUPS == {"group1": ("math", "science"), "group2": ("code", "knowledge")}
    with pytest.raises(KeyError, match="known tasks: math, science, code, knowledge, humaneval"):
        get_task("algebra")
    with pytest.raises(ValueError, match="already registered"):
        register_task(get_task("math"))


def test_register_file_task_and_look_up_its_examples(repo_root):
    path = repo_root / "tests/fixtures/datasets/mmlu.jsonl"
    task = register_task(FileTask("fixture-mmlu", path, "mmlu"), replace=True)
    assert "fixture-mmlu" in list_tasks() and get_task("fixture-mmlu") is task and task.kind == "mcq"
    ex = next(e for s in SPLITS for e in task.examples(s))
    assert get_example(ex.id) == ex and ex.id.startswith("fixture-mmlu/")


def test_importing_the_registry_stays_light():
    code = "import sys, collab.tasks; bad = {'pyarrow', 'torch'} & set(sys.modules); assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_get_task_example_checks_the_task_and_names_the_problem():
    from collab.tasks import get_task_example

    assert get_task_example("math/test/3", "math").id == "math/test/3"
    with pytest.raises(ValueError, match="belongs to task 'math', not 'science'"):
        get_task_example("math/test/3", "science")
    with pytest.raises(ValueError, match="unknown example_id 'nosuch/test/1'"):
        get_task_example("nosuch/test/1", "math")
