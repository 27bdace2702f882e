"""The task registry: built-in generators, HumanEval, and file-backed real datasets by name.

Built-in tasks are constructed on first use (importing this package stays cheap: no pyarrow, no
dataset reads). `get_example(id)` regenerates a built-in example from its id alone
(`"math/test/17"`, `"math/test/17@3"` for seed 3); for file-backed tasks it looks the id up in the
task's file. Paper section 4: group 1 = math + science reasoning, group 2 = code + general knowledge.
"""

from __future__ import annotations

import importlib

from collab.tasks.base import SPLITS, Example, Task
from collab.tasks.loaders import FORMATS, FileTask, FileTaskSpec, load_task_file

__all__ = ["FORMAT_DRILLS", "TASK_GROUPS", "FORMATS", "FileTask", "FileTaskSpec", "get_example", "get_task",
           "get_task_example", "list_tasks", "load_task_file", "register_task"]

TASK_GROUPS: dict[str, tuple[str, ...]] = {"group1": ("math", "science"), "group2": ("code", "knowledge")}
# Format-only tasks of the warm-up (collab/tasks/format_drill.py): never trained in a phase, never evaluated.
FORMAT_DRILLS: tuple[str, ...] = ("drill-math", "drill-qa", "drill-code")

# name -> "module:factory" called with no arguments on first use
_BUILTIN: dict[str, str] = {
    "math": "collab.tasks.math_gen:make_task",
    "science": "collab.tasks.science:make_task",
    "code": "collab.tasks.code_gen:make_task",
    "knowledge": "collab.tasks.knowledge:make_task",
    "humaneval": "collab.tasks.humaneval:HumanEvalTask",
    "drill-math": "collab.tasks.format_drill:make_math",
    "drill-qa": "collab.tasks.format_drill:make_qa",
    "drill-code": "collab.tasks.format_drill:make_code",
}
_TASKS: dict[str, Task] = {}


def list_tasks() -> list[str]:
    """Built-in task names first (in a fixed order), then registered ones in registration order."""
    return list(dict.fromkeys([*_BUILTIN, *_TASKS]))


def get_task(name: str) -> Task:
    """The task called `name`; KeyError naming every known task when there is none."""
    if name not in _TASKS:
        if name not in _BUILTIN:
            raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(list_tasks())}")
        module, factory = _BUILTIN[name].split(":")
        _TASKS[name] = getattr(importlib.import_module(module), factory)()
    return _TASKS[name]


def register_task(task: Task, replace: bool = False) -> Task:
    """Make `task` available under `task.name` (e.g. a `FileTask` built from config)."""
    if not replace and (task.name in _TASKS or task.name in _BUILTIN):
        raise ValueError(f"task {task.name!r} is already registered (pass replace=True to override)")
    _TASKS[task.name] = task
    return task


def get_example(example_id: str) -> Example:
    """The example with this id; the task name is the part before the first '/'."""
    task = get_task(example_id.split("/", 1)[0])
    get = getattr(task, "get", None)
    if get is not None:
        return get(example_id)
    for split in SPLITS:  # a task without an id index (e.g. a third-party Task): scan it
        for example in task.examples(split):
            if example.id == example_id:
                return example
    raise KeyError(f"no example {example_id!r} in task {task.name!r}")


def get_task_example(example_id: str, task: str) -> Example:
    """`get_example`, checked to belong to `task`; a ValueError names what is wrong."""
    try:
        example = get_example(example_id)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"unknown example_id {example_id!r}: {exc}") from None
    if example.task != task:
        raise ValueError(f"example {example_id!r} belongs to task {example.task!r}, not {task!r}")
    return example
