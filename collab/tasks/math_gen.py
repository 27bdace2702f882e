"""Built-in `math` task: arithmetic word problems at five difficulty levels.

Level 1 is one addition of numbers up to 20 (a 135M model gets some right); level 2 one
subtraction, multiplication or exact division up to ~100; level 3 two steps; level 4 three steps
with numbers up to ~1000; level 5 four steps with three- and four-digit numbers and percentages
(a small model essentially never gets it right). Every intermediate result is a non-negative
integer, so the answer is an integer string such as "42". `solution` holds one line per step
("3 + 4 = 7"), at most four, which the reference cloud writes as "Step k: ...".
The content key is the family and its numbers: the same arithmetic never appears in two splits.
"""

from __future__ import annotations

import random

from collab.tasks._rng import GeneratedTask, pick

NAMES = ("Ava", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hugo", "Iris", "Jonas", "Kira",
         "Liam", "Maya", "Noah", "Olga", "Pedro", "Quinn", "Rosa", "Sam", "Tara", "Umar", "Vera")
ITEMS = ("apples", "marbles", "pencils", "stickers", "books", "cookies", "stamps", "shells",
         "cards", "oranges", "coins", "flowers", "toy cars", "beads", "eggs", "balloons")

Built = tuple[str, dict]


def _result(key: str, question: str, steps: list[str], answer: int) -> Built:
    assert answer >= 0 and len(steps) <= 4, (key, steps)  # generator invariant, not user input
    return key, {"question": question, "answer": str(answer), "solution": "\n".join(steps),
                 "meta": {"family": key.split(":")[0]}}


def level1(rng: random.Random) -> Built:
    a, b = rng.randint(2, 20), rng.randint(2, 20)
    name, item = pick(rng, NAMES), pick(rng, ITEMS)
    question = pick(rng, (
        f"{name} has {a} {item}. {name} gets {b} more {item}. How many {item} does {name} have now?",
        f"There are {a} {item} in a box and {b} {item} on the table. How many {item} are there in total?",
        f"{name} found {a} {item} on Monday and {b} {item} on Tuesday. How many {item} did {name} find?",
    ))
    return _result(f"add:{a}+{b}", question, [f"{a} + {b} = {a + b}"], a + b)


def level2(rng: random.Random) -> Built:
    name, item = pick(rng, NAMES), pick(rng, ITEMS)
    op = rng.randrange(3)
    if op == 0:
        a = rng.randint(20, 99)
        b = rng.randint(2, a - 1)
        q = f"{name} had {a} {item} and gave {b} of them to a friend. How many {item} are left?"
        return _result(f"sub:{a}-{b}", q, [f"{a} - {b} = {a - b}"], a - b)
    a, b = rng.randint(2, 12), rng.randint(2, 12)
    if op == 1:
        q = f"{name} buys {a} bags with {b} {item} in each bag. How many {item} does {name} buy?"
        return _result(f"mul:{a}*{b}", q, [f"{a} * {b} = {a * b}"], a * b)
    q = f"{a * b} {item} are shared equally among {b} children. How many {item} does each child get?"
    return _result(f"div:{a * b}/{b}", q, [f"{a * b} / {b} = {a}"], a)


def level3(rng: random.Random) -> Built:
    name, item = pick(rng, NAMES), pick(rng, ITEMS)
    op = rng.randrange(3)
    if op == 0:
        p, s = rng.randint(3, 12), rng.randint(3, 12)
        r = rng.randint(1, p * s - 1)
        q = (f"{name} buys {p} packs of {item} with {s} {item} in each pack and gives away {r} "
             f"{item}. How many {item} does {name} have left?")
        steps = [f"{p} * {s} = {p * s}", f"{p * s} - {r} = {p * s - r}"]
        return _result(f"packs:{p}*{s}-{r}", q, steps, p * s - r)
    if op == 1:
        k, per = rng.randint(2, 9), rng.randint(3, 15)
        a = rng.randint(1, k * per - 1)
        b = k * per - a
        q = (f"{name} has {a} {item} and buys {b} more. {name} puts them equally into {k} boxes. "
             f"How many {item} are in each box?")
        steps = [f"{a} + {b} = {a + b}", f"{a + b} / {k} = {per}"]
        return _result(f"box:({a}+{b})/{k}", q, steps, per)
    price, n = rng.randint(3, 25), rng.randint(2, 9)
    paid = (price * n // 10 + rng.randint(1, 5)) * 10
    q = (f"A ticket costs {price} dollars. {name} buys {n} tickets and pays with {paid} dollars. "
         f"How many dollars of change does {name} get?")
    steps = [f"{n} * {price} = {n * price}", f"{paid} - {n * price} = {paid - n * price}"]
    return _result(f"change:{paid}-{n}*{price}", q, steps, paid - n * price)


def level4(rng: random.Random) -> Built:
    name, item = pick(rng, NAMES), pick(rng, ITEMS)
    if rng.randrange(2) == 0:
        b, c = rng.randint(40, 300), rng.randint(40, 300)
        a = b + c + rng.randint(10, 400)
        d, e = rng.randint(3, 19), rng.randint(12, 48)
        q = (f"A shop has {a} {item}. It sells {b} {item} in the morning and {c} in the afternoon. "
             f"Then it receives {d} boxes with {e} {item} each. How many {item} does the shop have now?")
        left = a - b - c
        steps = [f"{b} + {c} = {b + c}", f"{a} - {b + c} = {left}", f"{d} * {e} = {d * e}",
                 f"{left} + {d * e} = {left + d * e}"]
        return _result(f"shop:{a}-{b}-{c}+{d}*{e}", q, steps, left + d * e)
    wage, hours, days = rng.randint(11, 39), rng.randint(3, 9), rng.randint(4, 20)
    earned = wage * hours * days
    spent = rng.randint(earned // 4, earned - 1)
    q = (f"{name} earns {wage} dollars per hour and works {hours} hours a day for {days} days. "
         f"{name} then spends {spent} dollars. How many dollars does {name} have left?")
    steps = [f"{wage} * {hours} = {wage * hours}", f"{wage * hours} * {days} = {earned}",
             f"{earned} - {spent} = {earned - spent}"]
    return _result(f"wage:{wage}*{hours}*{days}-{spent}", q, steps, earned - spent)


def level5(rng: random.Random) -> Built:
    name = pick(rng, NAMES)
    if rng.randrange(2) == 0:
        per_day = 20 * rng.randint(12, 99)  # a multiple of 20 and p a multiple of 5: p% is exact
        days, pct, box = rng.randint(6, 31), 5 * rng.randint(1, 9), rng.randint(12, 48)
        made = per_day * days
        bad = made * pct // 100
        good = made - bad
        q = (f"A factory makes {per_day} widgets per day for {days} days. {pct}% of the widgets are "
             f"defective and thrown away. The rest are packed in boxes of {box}. How many full boxes "
             f"are packed?")
        steps = [f"{per_day} * {days} = {made}", f"{made} * {pct} / 100 = {bad}",
                 f"{made} - {bad} = {good}",
                 f"{good} / {box} = {good // box} remainder {good % box}, so {good // box} full boxes"]
        return _result(f"factory:{per_day}*{days}*{pct}%/{box}", q, steps, good // box)
    n1, c1 = rng.randint(120, 990), rng.randint(13, 99)
    n2, c2 = rng.randint(35, 400), rng.randint(41, 250)
    k, share = rng.randint(3, 17), rng.randint(150, 2500)
    total = n1 * c1 + n2 * c2
    budget = total + k * share
    q = (f"{name}'s school has a budget of {budget} dollars. It buys {n1} books at {c1} dollars each "
         f"and {n2} chairs at {c2} dollars each, then splits the remaining money equally among {k} "
         f"classes. How many dollars does each class get?")
    steps = [f"{n1} * {c1} = {n1 * c1}", f"{n2} * {c2} = {n2 * c2}",
             f"{budget} - {n1 * c1} - {n2 * c2} = {budget - total}", f"{budget - total} / {k} = {share}"]
    return _result(f"budget:{budget}-{n1}*{c1}-{n2}*{c2}/{k}", q, steps, share)


LEVELS = {1: level1, 2: level2, 3: level3, 4: level4, 5: level5}


def build(rng: random.Random, level: int) -> Built:
    return LEVELS[level](rng)


def make_task(name: str = "math", levels: tuple[int, ...] = (1, 2, 3, 4, 5)) -> GeneratedTask:
    return GeneratedTask(name=name, kind="math", build=build, levels=levels)
