"""`dagrpo tasks list|show` and `dagrpo grade`: look at the task data and score a response by hand.

argparse only at module level; the task registry and graders are imported when a command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from dagrpo.errors import UserError

if TYPE_CHECKING:  # importing collab.tasks loads every generator and loader: not for --help
    from collab.tasks.base import Example, Task


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_tasks(subparsers)
    _register_grade(subparsers)


def _register_tasks(subparsers: argparse._SubParsersAction) -> None:
    tasks = subparsers.add_parser(
        "tasks", help="list the built-in tasks or show rendered prompts and references",
        description="List the registered tasks, or show examples of one as the model sees them.",
    )
    tasks.set_defaults(func=lambda _args: _usage(tasks))
    sub = tasks.add_subparsers(dest="tasks_command", metavar="ACTION")
    lister = sub.add_parser("list", help="one line per task: name, kind, task group")
    lister.set_defaults(func=cmd_tasks_list)
    show = sub.add_parser(
        "show", help="rendered prompts (system + user messages) and references of N examples",
        description="Print N examples of TASK: the chat messages sent to the model and the reference "
        "answer/solution. The system prompt is the same for every example and is printed once.",
    )
    show.add_argument("task", metavar="TASK", help="task name (see `dagrpo tasks list`)")
    show.add_argument("--n", type=int, default=3, help="number of examples (default 3)")
    show.add_argument("--split", default="test", help="train, val or test (default test)")
    show.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    show.add_argument("--json", action="store_true", help="one JSON object per example instead")
    show.set_defaults(func=cmd_tasks_show)


def _register_grade(subparsers: argparse._SubParsersAction) -> None:
    grade = subparsers.add_parser(
        "grade", help="score one response: reward, cost, correctness, format (JSON)",
        description="Score a local response as training does (paper eq. 13/14) and print JSON with "
        "reward, cost, correct, format_ok, requests_help and extracted. Give either --example-id "
        "(built-in examples; required for code tasks) or --task with --reference.",
    )
    grade.add_argument("--response-file", required=True, metavar="F",
                       help="the local response text ('-' reads stdin)")
    grade.add_argument("--example-id", metavar="ID", help="a built-in example id, e.g. math/test/3")
    grade.add_argument("--task", metavar="TASK", help="task name, used with --reference")
    grade.add_argument("--reference", metavar="REF",
                       help="reference answer: math answer string or multiple-choice letter")
    grade.add_argument("--choice", action="append", default=[], metavar="TEXT",
                       help="a choice text, in order (repeat); lets mcq grading match choice texts")
    grade.add_argument("--cloud-file", metavar="F2",
                       help="cloud completion that replaces the help trigger in the response")
    grade.add_argument("--math-grader", default="exact", metavar="exact|equiv",
                       help="exact string match of the boxed answer (paper) or math-verify "
                       "equivalence (default exact)")
    grade.set_defaults(func=cmd_grade)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def cmd_tasks_list(_args: argparse.Namespace) -> int:
    from collab.tasks import TASK_GROUPS, get_task, list_tasks

    group_of = {task: group for group, names in TASK_GROUPS.items() for task in names}
    for name in list_tasks():
        print(f"{name:<12} {get_task(name).kind:<5} {group_of.get(name, '-')}")
    return 0


def cmd_tasks_show(args: argparse.Namespace) -> int:
    from collab.prompts import SYSTEM_PROMPT, build_messages
    from collab.tasks.base import SPLITS

    if args.split not in SPLITS:
        raise UserError(f"unknown split {args.split!r}; expected one of {', '.join(SPLITS)}")
    if args.n < 1:
        raise UserError(f"--n must be at least 1, got {args.n}")
    examples = _task(args.task).examples(args.split, n=args.n, seed=args.seed)
    if not args.json:
        print(f"=== system ===\n{SYSTEM_PROMPT}\n")
    for ex in examples:
        messages = build_messages(ex.kind, ex.question, ex.choices)
        if args.json:
            record = {"id": ex.id, "kind": ex.kind, "difficulty": ex.difficulty,
                      "messages": messages, "answer": ex.answer, "solution": ex.solution}
            if ex.kind == "code":
                record.update(entry_point=ex.entry_point, tests=ex.tests)
            print(json.dumps(record))
            continue
        print(f"=== {ex.id} (kind {ex.kind}, difficulty {ex.difficulty}) ===")
        print(f"--- user ---\n{messages[1]['content']}")
        print(f"--- reference ---\n{_reference_text(ex)}\n")
    return 0


def cmd_grade(args: argparse.Namespace) -> int:
    from collab.grading import MATH_GRADERS
    from collab.scoring import score

    if args.math_grader not in MATH_GRADERS:
        raise UserError(f"unknown --math-grader {args.math_grader!r}; expected exact or equiv")
    example = _grade_example(args)
    local = _read(args.response_file, "--response-file")
    cloud = _read(args.cloud_file, "--cloud-file") if args.cloud_file else None

    scored = score(example, local, cloud, math_grader=args.math_grader)
    print(json.dumps({
        "example_id": example.id,
        "reward": scored.reward,
        "cost": scored.cost,
        "correct": scored.correct,
        "format_ok": scored.format_ok,
        "requests_help": scored.requests_help,
        "extracted": scored.extracted,
        "math_grader": args.math_grader,
    }, indent=2))
    return 0


def _grade_example(args: argparse.Namespace) -> Example:
    from collab.prompts import CHOICE_LETTERS
    from collab.tasks.base import Example

    if args.example_id:
        if args.task or args.reference:
            raise UserError("give either --example-id or --task with --reference, not both")
        from collab.tasks import get_example

        try:
            return get_example(args.example_id)
        except (KeyError, ValueError, IndexError) as exc:
            reason = exc.args[0] if exc.args else type(exc).__name__  # KeyError's str() adds quotes
            raise UserError(f"unknown example id {args.example_id!r}: {reason}") from None
    if not (args.task and args.reference is not None):
        raise UserError("need --example-id, or --task together with --reference")
    kind = _task(args.task).kind
    if kind == "code":
        raise UserError(f"task {args.task!r} is a code task: its tests come with --example-id")
    answer = args.reference.strip()
    if kind == "mcq":
        answer = answer.upper()
        letters = CHOICE_LETTERS[: len(args.choice) or len(CHOICE_LETTERS)]
        if len(answer) != 1 or answer not in letters:
            raise UserError(f"--reference of a multiple-choice task is a letter in {letters}, "
                            f"got {args.reference!r}")
    return Example(id=f"cli/{args.task}", task=args.task, kind=kind, question="",
                   answer=answer, choices=tuple(args.choice))


def _task(name: str) -> Task:
    from collab.tasks import get_task, list_tasks

    names = list_tasks()
    if name not in names:
        raise UserError(f"unknown task {name!r}; known tasks: {', '.join(names)}")
    return get_task(name)


def _read(path: str, flag: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read {flag} {path!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UserError(f"{flag} {path!r} is not UTF-8 text") from None


def _reference_text(ex: Example) -> str:
    if ex.kind == "code":
        return f"entry point: {ex.entry_point or '(stdio program)'}\n{ex.solution.rstrip()}"
    head = f"answer: {ex.answer}"
    return f"{head}\n{ex.solution.rstrip()}" if ex.solution.strip() else head
