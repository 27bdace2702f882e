"""Format drills: generated puzzles that teach the paper's answer format and no task skill.

The format warm-up (trainer/warmup.py) trains only on these, so no example or solution of a task
that a run trains or evaluates is seen before its phase. They are built to be unlike every
evaluated task: no word problems, no arithmetic beyond reading a list, no science or general
knowledge facts, no algorithmic code. One drill per prompt kind, since each kind has its own format
(appendix F.1: a boxed number, a boxed letter, a Python block):

  drill-math  read a short list of numbers: its length, its first or last entry, its largest entry
  drill-qa    pick the word that starts with a given letter, or the longest of four words
  drill-code  a function of no arguments that returns a given literal (a list or a string)

Every example carries `meta["first_step"]`, a real first reasoning step of that problem: the
warm-up's help targets are that step, then the trigger (so asking is not one memorised string).
Drills are never trained on in a phase nor evaluated (trainer/config.py refuses it).
"""

from __future__ import annotations

import random
import string

from collab.tasks._rng import GeneratedTask, mcq_fields, pick

NAMES = ("drill-math", "drill-qa", "drill-code")

# Nonsense syllables, so the drill teaches no vocabulary a knowledge question could use.
SYLLABLES = ("ka", "lo", "mi", "nu", "pe", "ri", "so", "tu", "va", "ze", "bo", "di", "fe", "gu")

Built = tuple[str, dict]


def _word(rng: random.Random, first: str | None = None, length: int | None = None) -> str:
    syllables = length or rng.randint(1, 3)
    text = "".join(pick(rng, SYLLABLES) for _ in range(syllables))
    return (first + text[1:]) if first else text


def _numbers(rng: random.Random) -> list[int]:
    return [rng.randint(1, 99) for _ in range(rng.randint(3, 7))]


def build_math(rng: random.Random, level: int) -> Built:
    nums = _numbers(rng)
    shown = ", ".join(map(str, nums))
    which = rng.randrange(4)
    if which == 0:
        q, a = f"How many numbers are in the list [{shown}]?", len(nums)
        steps = [f"The list is {shown}.", f"Counting them gives {len(nums)} numbers."]
    elif which == 1:
        q, a = f"What is the first number of the list [{shown}]?", nums[0]
        steps = [f"The list starts with {nums[0]}."]
    elif which == 2:
        q, a = f"What is the last number of the list [{shown}]?", nums[-1]
        steps = [f"The list is {shown}.", f"Its last number is {nums[-1]}."]
    else:
        q, a = f"What is the largest number in the list [{shown}]?", max(nums)
        steps = [f"The list is {shown}.", f"Comparing them, the largest is {max(nums)}."]
    return f"list{which}:{shown}", {"question": q, "answer": str(a), "solution": "\n".join(steps),
                                    "meta": {"family": f"list{which}", "first_step": steps[0]}}


def build_qa(rng: random.Random, level: int) -> Built:
    if rng.randrange(2) == 0:
        letters = rng.sample(string.ascii_lowercase, 4)
        words = [_word(rng, first=c) for c in letters]
        target = letters[0]
        q = f"Which of these made-up words starts with the letter '{target}'?"
        steps = [f"The word must begin with '{target}'.", f"Only {words[0]} begins with '{target}'."]
        fields = mcq_fields(rng, words[0], words[1:], steps, q, "startswith")
        key = f"startswith:{target}:{','.join(words)}"
    else:
        words = [_word(rng, length=n) for n in rng.sample((1, 2, 3, 4), 4)]
        longest = max(words, key=len)
        q = "Which of these made-up words has the most letters?"
        steps = [f"The words have {', '.join(str(len(w)) for w in words)} letters.",
                 f"{longest} has {len(longest)} letters, more than the others."]
        fields = mcq_fields(rng, longest, [w for w in words if w != longest], steps, q, "longest")
        key = f"longest:{','.join(words)}"
    fields["meta"]["first_step"] = steps[0]
    return key, fields


def build_code(rng: random.Random, level: int) -> Built:
    name = f"{_word(rng, length=2)}_{pick(rng, ('value', 'items', 'text', 'result'))}"
    if rng.randrange(2) == 0:
        literal = repr(_numbers(rng))
        what = f"the list {literal}"
    else:
        literal = repr(_word(rng, length=rng.randint(2, 4)))
        what = f"the string {literal}"
    q = f"Write a Python function {name}() that takes no arguments and returns {what}"
    source = f"def {name}():\n    return {literal}\n"
    return f"const:{name}:{literal}", {
        "question": q, "solution": source, "entry_point": name, "tests": f"assert {name}() == {literal}\n",
        "meta": {"family": "constant", "first_step": f"The function {name} only has to return {what}."},
    }


def make_task(name: str) -> GeneratedTask:
    kind, build = {"drill-math": ("math", build_math), "drill-qa": ("mcq", build_qa),
                   "drill-code": ("code", build_code)}[name]
    return GeneratedTask(name=name, kind=kind, build=build, levels=(1,))


def make_math() -> GeneratedTask:
    return make_task("drill-math")


def make_qa() -> GeneratedTask:
    return make_task("drill-qa")


def make_code() -> GeneratedTask:
    return make_task("drill-code")
