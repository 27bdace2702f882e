"""`dagrpo tasks list|show` and `dagrpo grade` against the real task registry and sandbox."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from collab.protocol import HELP_TRIGGER
from collab.prompts import SYSTEM_PROMPT
from collab.reference import reference_completion
from collab.tasks import get_task
from dagrpo.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def response(answer: str) -> str:
    return f"<think>\nStep 1: compute.\n</think>\n<answer>Final answer: \\boxed{{{answer}}}</answer>"


# --- tasks --------------------------------------------------------------------------------------

def test_tasks_list(capsys):
    rc, out, _ = run(capsys, "tasks", "list")
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()}
    assert rc == 0
    assert rows["math"] == ["math", "group1"]
    assert rows["science"] == ["mcq", "group1"]
    assert rows["code"] == ["code", "group2"]
    assert rows["knowledge"] == ["mcq", "group2"]
    assert rows["humaneval"][0] == "code"


def test_tasks_show_text(capsys):
    rc, out, _ = run(capsys, "tasks", "show", "math", "--n", "2", "--seed", "1")
    expected = get_task("math").examples("test", n=2, seed=1)
    assert rc == 0
    assert out.count(SYSTEM_PROMPT) == 1
    for ex in expected:
        assert f"=== {ex.id} " in out
        assert f"answer: {ex.answer}" in out
    assert out.count("Let\u2019s think step by step.") == 2


def test_tasks_show_json_mcq(capsys):
    rc, out, _ = run(capsys, "tasks", "show", "science", "--n", "1", "--split", "train", "--json")
    (record,) = [json.loads(line) for line in out.splitlines()]
    assert rc == 0 and record["kind"] == "mcq"
    assert [m["role"] for m in record["messages"]] == ["system", "user"]
    assert "Possible answers: A. " in record["messages"][1]["content"]
    assert record["answer"] in "ABCDEFGHIJ"


def test_tasks_show_json_code_carries_tests(capsys):
    rc, out, _ = run(capsys, "tasks", "show", "code", "--n", "1", "--json")
    record = json.loads(out)
    assert rc == 0 and record["tests"] and record["entry_point"] in record["solution"]


# --- grade --------------------------------------------------------------------------------------

def test_grade_math_by_reference(capsys, tmp_path):
    f = write(tmp_path, "r.txt", response("12"))
    rc, out, _ = run(capsys, "grade", "--task", "math", "--reference", "12", "--response-file", f)
    result = json.loads(out)
    assert rc == 0
    assert {k: result[k] for k in ("reward", "cost", "correct", "format_ok", "requests_help")} == {
        "reward": 1.0, "cost": 0.0, "correct": True, "format_ok": True, "requests_help": False}
    assert result["extracted"] == "12" and result["math_grader"] == "exact"


def test_grade_math_grader_equiv(capsys, tmp_path):
    f = write(tmp_path, "r.txt", response("0.5"))
    base = ("grade", "--task", "math", "--reference", "1/2", "--response-file", f)
    assert json.loads(run(capsys, *base)[1])["correct"] is False
    assert json.loads(run(capsys, *base, "--math-grader", "equiv")[1])["correct"] is True


def test_grade_help_with_cloud_file(capsys, tmp_path):
    ex = get_task("math").examples("test", n=1)[0]
    f = write(tmp_path, "r.txt", f"<think>\nStep 1: hard.\n{HELP_TRIGGER} junk")
    c = write(tmp_path, "c.txt", reference_completion(ex))
    rc, out, _ = run(capsys, "grade", "--example-id", ex.id, "--response-file", f, "--cloud-file", c)
    result = json.loads(out)
    assert rc == 0 and result["example_id"] == ex.id
    assert (result["reward"], result["cost"], result["requests_help"]) == (1.0, 1.0, True)


def test_grade_mcq_with_choice_texts(capsys, tmp_path):
    f = write(tmp_path, "r.txt", response("Mars"))
    args = ("grade", "--task", "science", "--reference", "b", "--response-file", f)
    assert json.loads(run(capsys, *args, "--choice", "Venus", "--choice", "Mars")[1])["correct"]
    assert not json.loads(run(capsys, *args)[1])["correct"]  # without choices only letters/indices


@pytest.mark.integration
def test_grade_code_example_in_the_sandbox(capsys, tmp_path):
    ex = get_task("code").examples("test", n=1)[0]
    good = f"<think>\nStep 1: write it.\n</think>\n<answer>\n```python\n{ex.solution}\n```\n</answer>"
    bad = good.replace(ex.solution, "raise SystemExit(1)")
    for text, expected in ((good, 1.0), (bad, 0.0)):
        f = write(tmp_path, "r.txt", text)
        rc, out, _ = run(capsys, "grade", "--example-id", ex.id, "--response-file", f)
        assert rc == 0 and json.loads(out)["reward"] == expected


@pytest.mark.parametrize(
    "argv, message",
    [
        (("--task", "math", "--reference", "1", "--response-file", "/nonexistent/r.txt"),
         "cannot read --response-file '/nonexistent/r.txt'"),
        (("--task", "algebra", "--reference", "1", "--response-file", "{f}"), "unknown task 'algebra'"),
        (("--example-id", "math/test/notanumber", "--response-file", "{f}"), "unknown example id"),
        (("--example-id", "nosuchtask/test/1", "--response-file", "{f}"), "unknown example id"),
        (("--task", "math", "--reference", "1", "--response-file", "{f}", "--math-grader", "fuzzy"),
         "unknown --math-grader 'fuzzy'"),
        (("--task", "code", "--reference", "x", "--response-file", "{f}"), "--example-id"),
        (("--task", "science", "--reference", "Z", "--response-file", "{f}"), "letter"),
        (("--response-file", "{f}"), "need --example-id"),
        (("--task", "math", "--reference", "1", "--response-file", "{f}", "--cloud-file", "/no/c"),
         "cannot read --cloud-file"),
    ],
)
def test_grade_bad_input_is_one_line_and_exit_2(capsys, tmp_path, argv, message):
    f = write(tmp_path, "r.txt", response("1"))
    rc, out, err = run(capsys, "grade", *(a.replace("{f}", f) for a in argv))
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("dagrpo grade: error: ")
    assert message in err


def test_tasks_show_bad_input(capsys):
    for argv, message in ((("nosuch",), "unknown task 'nosuch'"),
                          (("math", "--split", "dev"), "unknown split 'dev'"),
                          (("math", "--n", "0"), "--n must be at least 1")):
        rc, _, err = run(capsys, "tasks", "show", *argv)
        assert rc == 2 and err.count("\n") == 1 and message in err


def test_console_script_error_has_no_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "dagrpo.cli", "grade", "--task", "math", "--reference", "1",
         "--response-file", "/nonexistent"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
