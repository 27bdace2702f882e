"""Built-in `code` task: write one Python function; hidden assert tests decide correctness.

24 function families at five levels, each drawing its behaviour parameters (a constant, a
separator, the letters to count, the FizzBuzz words...), its function name and its test inputs
from the RNG. Level 1: one-line functions (add a constant, count a character); level 5:
multi-part functions (Roman numerals, interval merging, an RPN calculator, text statistics).
Expected outputs come from a trusted Python oracle per family, written independently of the
reference `solution` source, so the unit test "every solution passes its tests" checks both.
`question` states the signature and the behaviour with one example (the first test case);
`tests` asserts every case (the example included). The content key is the family and its
behaviour parameters: the same function never appears in two splits (families without many
parameter values therefore live in one split only; every level has families in every split).
"""

from __future__ import annotations

import random
import string
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from math import gcd

from collab.tasks._rng import GeneratedTask, pick
from collab.tasks.knowledge import to_roman

N_CASES = 6  # test cases per example (the first is shown in the question)
WORDS = ("apple", "river", "stone", "cloud", "tiger", "lemon", "paper", "green", "music", "ocean",
         "bread", "chair", "light", "north", "smile", "train", "water", "zebra", "delta", "pixel")


@dataclass(frozen=True)
class Problem:
    key: str  # family + behaviour parameters (the split key)
    name: str  # entry point
    args: str  # parameter list as written in the signature, e.g. "nums, k"
    doc: str  # what the function returns, completing "... that {doc}"
    source: str  # reference implementation
    oracle: Callable[..., object]  # trusted implementation computing expected outputs
    cases: Callable[[], list[tuple]]  # draws the argument tuples, one per test case (deferred:
    # only the draw that lands in the requested split pays for it)


def _words(rng: random.Random, n: int) -> list[str]:
    return [pick(rng, WORDS) for _ in range(n)]


def _ints(rng: random.Random, n: int, lo: int = -20, hi: int = 50) -> list[int]:
    return [rng.randint(lo, hi) for _ in range(n)]


def _cases(rng: random.Random, make: Callable[[], tuple], fixed: tuple[tuple, ...] = ()) -> Callable[[], list[tuple]]:
    """First a random case (shown as the example), then the edge cases, then more random ones."""
    def draw() -> list[tuple]:
        cases = [make()] + list(fixed)
        while len(cases) < N_CASES:
            cases.append(make())
        return cases
    return draw


# ---- level 1: one-liners ------------------------------------------------------------------------

def add_constant(rng: random.Random) -> Problem:
    k, name = rng.randint(2, 99), pick(rng, ("add_offset", "shift_up", "plus_constant"))
    return Problem(f"add:{k}", name, "x", f"returns the integer x plus {k}",
                   f"def {name}(x):\n    return x + {k}\n", lambda x: x + k,
                   _cases(rng, lambda: (rng.randint(-100, 100),), ((0,),)))


def scale_list(rng: random.Random) -> Problem:
    k, name = rng.randint(2, 12), pick(rng, ("scale_all", "multiply_each", "times_k"))
    return Problem(f"scale:{k}", name, "nums", f"returns a new list with every number of the list nums multiplied by {k}",
                   f"def {name}(nums):\n    return [x * {k} for x in nums]\n", lambda nums: [x * k for x in nums],
                   _cases(rng, lambda: (_ints(rng, rng.randint(1, 6)),), (([],),)))


def count_char(rng: random.Random) -> Problem:
    c, name = pick(rng, string.ascii_lowercase), pick(rng, ("count_letter", "char_count", "how_many"))
    return Problem(f"countchar:{c}", name, "s", f"returns how many times the character '{c}' occurs in the string s",
                   f"def {name}(s):\n    return s.count({c!r})\n", lambda s: sum(ch == c for ch in s),
                   _cases(rng, lambda: (" ".join(_words(rng, 3)) + c * rng.randint(0, 2),), (("",),)))


def divisible(rng: random.Random) -> Problem:
    k, name = rng.randint(2, 13), pick(rng, ("is_multiple", "divides_evenly", "is_divisible"))
    return Problem(f"divisible:{k}", name, "n", f"returns True if the integer n is divisible by {k} and False otherwise",
                   f"def {name}(n):\n    return n % {k} == 0\n", lambda n: (n // k) * k == n,
                   _cases(rng, lambda: (rng.choice((k * rng.randint(-9, 9), rng.randint(-99, 99))),), ((0,), (k + 1,))))


# ---- level 2: a loop or a comprehension ----------------------------------------------------------

def sum_multiples(rng: random.Random) -> Problem:
    k = rng.randint(2, 7)
    name = "sum_of_evens" if k == 2 else pick(rng, ("sum_multiples", "sum_divisible"))
    return Problem(f"summult:{k}", name, "nums", f"returns the sum of the numbers in the list nums that are divisible by {k}",
                   f"def {name}(nums):\n    return sum(x for x in nums if x % {k} == 0)\n",
                   lambda nums: sum(filter(lambda x: x % k == 0, nums)),
                   _cases(rng, lambda: (_ints(rng, rng.randint(3, 8)),), (([],), ([1, k, 2 * k + 1, 3 * k],))))


def reverse_words(rng: random.Random) -> Problem:
    sep, name = pick(rng, (" ", ",", "-", ";", "/")), pick(rng, ("reverse_words", "flip_order"))
    return Problem(f"revwords:{sep}", name, "s", f"returns the string s with the order of its {sep!r}-separated words reversed",
                   f"def {name}(s):\n    return {sep!r}.join(reversed(s.split({sep!r})))\n",
                   lambda s: sep.join(s.split(sep)[::-1]),
                   _cases(rng, lambda: (sep.join(_words(rng, rng.randint(2, 5))),), (("solo",),)))


def count_letters(rng: random.Random) -> Problem:
    letters = "".join(sorted(rng.sample("aeioulnrst", rng.randint(2, 4))))
    name = "count_vowels" if letters == "aeiou" else pick(rng, ("count_letters", "letter_hits"))
    return Problem(f"countset:{letters}", name, "s",
                   f"returns how many characters of the string s are one of the letters {', '.join(letters)} (case-insensitive)",
                   f"def {name}(s):\n    return sum(1 for ch in s.lower() if ch in {letters!r})\n",
                   lambda s: sum(s.lower().count(ch) for ch in letters),
                   _cases(rng, lambda: (" ".join(w.capitalize() for w in _words(rng, 3)),), (("",),)))


def digit_sum(rng: random.Random) -> Problem:
    t, name = rng.randint(0, 6), pick(rng, ("digit_sum", "sum_big_digits"))
    return Problem(f"digitsum:{t}", name, "n", f"returns the sum of the decimal digits of the non-negative integer n that are greater than {t}",
                   f"def {name}(n):\n    return sum(int(d) for d in str(n) if int(d) > {t})\n",
                   lambda n: sum(d for d in map(int, str(n)) if d > t),
                   _cases(rng, lambda: (rng.randint(0, 10**6),), ((0,),)))


def gcd_times(rng: random.Random) -> Problem:
    lcm = rng.randrange(2) == 1
    name = pick(rng, ("lcm", "least_common_multiple")) if lcm else pick(rng, ("gcd", "greatest_common_divisor"))
    what = "least common multiple" if lcm else "greatest common divisor"
    body = "    return a // x * b\n" if lcm else "    return x\n"
    source = f"def {name}(a, b):\n    x, y = a, b\n    while y:\n        x, y = y, x % y\n{body}"
    return Problem(f"gcd:{lcm}", name, "a, b", f"returns the {what} of the positive integers a and b", source,
                   lambda a, b: a * b // gcd(a, b) if lcm else gcd(a, b),
                   _cases(rng, lambda: (rng.randint(1, 300), rng.randint(1, 300)), ((7, 7), (1, 12))))


# ---- level 3: a little state or a rule with cases ----------------------------------------------------

def fibonacci(rng: random.Random) -> Problem:
    a, b, name = rng.randint(0, 3), rng.randint(1, 4), pick(rng, ("nth_fibonacci", "fib_like"))
    def oracle(n: int) -> int:
        seq = [a, b]
        while len(seq) <= n:
            seq.append(seq[-1] + seq[-2])
        return seq[n]
    source = f"def {name}(n):\n    x, y = {a}, {b}\n    for _ in range(n):\n        x, y = y, x + y\n    return x\n"
    return Problem(f"fib:{a}:{b}", name, "n",
                   f"returns term n (counting from 0) of the sequence that starts {a}, {b} and where every later term is the sum of the two before it",
                   source, oracle, _cases(rng, lambda: (rng.randint(2, 30),), ((0,), (1,))))


def fizzbuzz(rng: random.Random) -> Problem:
    d1, d2 = rng.sample(range(2, 6), 2)
    w1, w2 = rng.sample(("Fizz", "Buzz", "Ping", "Pong", "Zap", "Boom"), 2)
    name = pick(rng, ("fizzbuzz", "word_counts_up"))
    def oracle(n: int) -> list[str]:
        return [(w1 if i % d1 == 0 else "") + (w2 if i % d2 == 0 else "") or str(i) for i in range(1, n + 1)]
    source = (f"def {name}(n):\n    out = []\n    for i in range(1, n + 1):\n        s = ''\n"
              f"        if i % {d1} == 0:\n            s += {w1!r}\n        if i % {d2} == 0:\n            s += {w2!r}\n"
              f"        out.append(s or str(i))\n    return out\n")
    doc = (f"returns a list of strings for the numbers 1 to n: '{w1}' for multiples of {d1}, '{w2}' for multiples "
           f"of {d2}, '{w1}{w2}' for multiples of both, and the number itself (as a string) otherwise")
    return Problem(f"fizz:{d1}{w1}:{d2}{w2}", name, "n", doc, source, oracle,
                   _cases(rng, lambda: (rng.randint(max(d1, d2), d1 * d2 + 3),), ((0,), (1,))))


def running_extreme(rng: random.Random) -> Problem:
    use_max = rng.randrange(2) == 1
    word, fn = ("maximum", "max") if use_max else ("minimum", "min")
    name = pick(rng, (f"running_{fn}", f"prefix_{fn}"))
    source = (f"def {name}(nums):\n    out = []\n    for x in nums:\n"
              f"        out.append(x if not out else {fn}(out[-1], x))\n    return out\n")
    oracle = lambda nums: [(max if use_max else min)(nums[: i + 1]) for i in range(len(nums))]  # noqa: E731
    return Problem(f"running:{fn}", name, "nums", f"returns a list whose i-th element is the {word} of nums[0..i]",
                   source, oracle, _cases(rng, lambda: (_ints(rng, rng.randint(3, 8)),), (([],),)))


def palindrome(rng: random.Random) -> Problem:
    strict = rng.randrange(2) == 1
    name = pick(rng, ("is_palindrome", "reads_same_backwards"))
    if strict:
        doc, source = "returns True if the string s reads the same forwards and backwards (exactly), else False", \
            f"def {name}(s):\n    return s == s[::-1]\n"
        oracle = lambda s: all(s[i] == s[-1 - i] for i in range(len(s)))  # noqa: E731
    else:
        doc = "returns True if the string s is a palindrome when only its letters are kept and case is ignored, else False"
        source = f"def {name}(s):\n    t = [c.lower() for c in s if c.isalpha()]\n    return t == t[::-1]\n"
        oracle = lambda s: (lambda t: t == t[::-1])("".join(filter(str.isalpha, s)).lower())  # noqa: E731
    def make() -> tuple:
        w = pick(rng, WORDS)
        return (rng.choice((w + w[::-1], w[:3] + w[2::-1], "A " + w[:2] + ", " + w[1::-1] + " a", w)),)
    return Problem(f"palindrome:{strict}", name, "s", doc, source, oracle, _cases(rng, make, (("",), ("Ab ba",), ("ab",))))


def second_largest(rng: random.Random) -> Problem:
    name = pick(rng, ("second_largest", "runner_up"))
    source = f"def {name}(nums):\n    values = sorted(set(nums))\n    return values[-2] if len(values) >= 2 else None\n"
    oracle = lambda nums: (sorted(set(nums), reverse=True) + [None, None])[1]  # noqa: E731
    return Problem("second", name, "nums", "returns the second largest distinct value of the list nums, or None if there is none",
                   source, oracle, _cases(rng, lambda: (_ints(rng, rng.randint(2, 7), 0, 9),), (([5, 5],), ([],))))


def primes_upto(rng: random.Random) -> Problem:
    count_only = rng.randrange(2) == 1
    name = pick(rng, ("count_primes", "prime_count")) if count_only else pick(rng, ("primes_up_to", "list_primes"))
    def oracle(n: int) -> int | list[int]:
        ps = [p for p in range(2, n + 1) if all(p % d for d in range(2, p))]
        return len(ps) if count_only else ps
    source = (f"def {name}(n):\n    ps = []\n    for p in range(2, n + 1):\n"
              f"        if all(p % d for d in range(2, int(p ** 0.5) + 1)):\n            ps.append(p)\n"
              f"    return {'len(ps)' if count_only else 'ps'}\n")
    doc = "returns how many prime numbers are <= n" if count_only else "returns the list of the prime numbers <= n, in increasing order"
    return Problem(f"primes:{count_only}", name, "n", doc, source, oracle, _cases(rng, lambda: (rng.randint(2, 60),), ((1,), (2,))))


# ---- level 4: string processing with several rules -------------------------------------------------

def run_length(rng: random.Random) -> Problem:
    count_first = rng.randrange(2) == 1
    name = pick(rng, ("run_length_encode", "rle"))
    piece = "str(n) + c" if count_first else "c + str(n)"
    source = (f"def {name}(s):\n    out = ''\n    i = 0\n    while i < len(s):\n        c, n = s[i], 0\n"
              f"        while i < len(s) and s[i] == c:\n            i += 1\n            n += 1\n"
              f"        out += {piece}\n    return out\n")
    def oracle(s: str) -> str:
        groups, out = [], ""
        for ch in s:
            if groups and groups[-1][0] == ch:
                groups[-1][1] += 1
            else:
                groups.append([ch, 1])
        for ch, n in groups:
            out += f"{n}{ch}" if count_first else f"{ch}{n}"
        return out
    fmt = "count then character, e.g. 'aaab' -> '3a1b'" if count_first else "character then count, e.g. 'aaab' -> 'a3b1'"
    make = lambda: ("".join(pick(rng, "abc") * rng.randint(1, 4) for _ in range(rng.randint(2, 5))),)  # noqa: E731
    return Problem(f"rle:{count_first}", name, "s", f"returns the run-length encoding of the string s, each run written as {fmt}",
                   source, oracle, _cases(rng, make, (("",), ("z",))))


def caesar(rng: random.Random) -> Problem:
    k, name = rng.randint(1, 25), pick(rng, ("caesar", "shift_letters"))
    source = (f"def {name}(s):\n    out = []\n    for c in s:\n        if c.islower():\n"
              f"            out.append(chr((ord(c) - 97 + {k}) % 26 + 97))\n        elif c.isupper():\n"
              f"            out.append(chr((ord(c) - 65 + {k}) % 26 + 65))\n        else:\n            out.append(c)\n"
              f"    return ''.join(out)\n")
    low, up = string.ascii_lowercase, string.ascii_uppercase
    table = str.maketrans(low + up, low[k:] + low[:k] + up[k:] + up[:k])
    make = lambda: (" ".join(w.capitalize() if rng.randrange(2) else w for w in _words(rng, 2)) + "!",)  # noqa: E731
    return Problem(f"caesar:{k}", name, "s",
                   f"returns s with every letter shifted {k} places forward in the alphabet (wrapping around, keeping case); other characters stay",
                   source, lambda s: s.translate(table), _cases(rng, make, (("",), ("xyz XYZ",))))


def balanced(rng: random.Random) -> Problem:
    pairs = "".join(sorted(rng.sample(["()", "[]", "{}", "<>"], rng.randint(2, 3))))
    name = pick(rng, ("is_balanced", "brackets_match"))
    opens, closes = pairs[0::2], pairs[1::2]
    source = (f"def {name}(s):\n    match = {dict(zip(closes, opens))!r}\n    stack = []\n    for c in s:\n"
              f"        if c in {opens!r}:\n            stack.append(c)\n        elif c in match:\n"
              f"            if not stack or stack.pop() != match[c]:\n                return False\n    return not stack\n")
    pieces = [pairs[i:i + 2] for i in range(0, len(pairs), 2)]
    def oracle(s: str) -> bool:  # delete adjacent matched pairs until nothing changes
        t, before = "".join(c for c in s if c in pairs), None
        while t != before:
            before = t
            for piece in pieces:
                t = t.replace(piece, "")
        return t == ""
    def make() -> tuple:
        s = "".join(pick(rng, pieces) for _ in range(rng.randint(1, 3)))
        s = s[:1] + s + s[-1:] if rng.randrange(2) else s  # sometimes unbalanced
        return ("".join(rng.sample(s, len(s))) if rng.randrange(3) == 0 else s,)
    shown = ", ".join(pieces)
    return Problem(f"balanced:{pairs}", name, "s",
                   f"returns True if the brackets {shown} in the string s are balanced and properly nested (other characters are ignored), else False",
                   source, oracle, _cases(rng, make, (("",), ("x",), (closes[0] + opens[0],))))


def flatten(rng: random.Random) -> Problem:
    name = pick(rng, ("flatten", "flatten_nested"))
    source = (f"def {name}(items):\n    out = []\n    for x in items:\n        if isinstance(x, list):\n"
              f"            out.extend({name}(x))\n        else:\n            out.append(x)\n    return out\n")
    def oracle(items: list) -> list:
        out, stack = [], [iter(items)]
        while stack:
            for x in stack[-1]:
                if isinstance(x, list):
                    stack.append(iter(x))
                    break
                out.append(x)
            else:
                stack.pop()
        return out
    def nested(depth: int) -> list:
        return [nested(depth - 1) if depth and rng.randrange(3) == 0 else rng.randint(0, 9) for _ in range(rng.randint(1, 3))]
    return Problem("flatten", name, "items", "returns a flat list of all the integers in the arbitrarily nested list items, in order",
                   source, oracle, _cases(rng, lambda: (nested(3),), (([],), ([[], [[]]],))))


def common_prefix(rng: random.Random) -> Problem:
    suffix = rng.randrange(2) == 1
    which = "suffix" if suffix else "prefix"
    name = pick(rng, (f"longest_common_{which}", f"shared_{which}"))
    if suffix:
        source = (f"def {name}(words):\n    if not words:\n        return ''\n    out = ''\n"
                  f"    for chars in zip(*[w[::-1] for w in words]):\n        if len(set(chars)) != 1:\n            break\n"
                  f"        out = chars[0] + out\n    return out\n")
    else:
        source = (f"def {name}(words):\n    if not words:\n        return ''\n    out = ''\n"
                  f"    for chars in zip(*words):\n        if len(set(chars)) != 1:\n            break\n"
                  f"        out += chars[0]\n    return out\n")
    def oracle(words: list[str]) -> str:
        best = ""
        for n in range(1, min(map(len, words), default=0) + 1):
            parts = {w[-n:] if suffix else w[:n] for w in words}
            if len(parts) == 1:
                best = parts.pop()
        return best
    def make() -> tuple:
        stem = pick(rng, WORDS)[: rng.randint(0, 4)]
        return ([stem + w if not suffix else w + stem for w in _words(rng, rng.randint(2, 4))],)
    return Problem(f"common:{which}", name, "words", f"returns the longest common {which} of the strings in the list words ('' for an empty list)",
                   source, oracle, _cases(rng, make, (([],), (["same", "same"],))))


# ---- level 5: multi-part functions -----------------------------------------------------------------

ROMAN = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}


def roman_to_int(rng: random.Random) -> Problem:
    name = pick(rng, ("roman_to_int", "parse_roman"))
    source = (f"def {name}(s):\n    values = {ROMAN!r}\n    total = 0\n    for i, c in enumerate(s):\n"
              f"        v = values[c]\n        if i + 1 < len(s) and values[s[i + 1]] > v:\n            total -= v\n"
              f"        else:\n            total += v\n    return total\n")
    value_of: dict[str, int] = {}  # the numeral writer, inverted, is the oracle
    def cases() -> list[tuple]:
        numbers = [rng.randint(1, 3999) for _ in range(N_CASES - 2)] + [1994, 9]
        value_of.update((to_roman(n), n) for n in numbers)
        return [(to_roman(n),) for n in numbers]
    return Problem("roman", name, "s", "returns the integer value of the Roman numeral s (1 to 3999, subtractive notation such as IV and CM)",
                   source, value_of.__getitem__, cases)


def merge_intervals(rng: random.Random) -> Problem:
    touching = rng.randrange(2) == 1
    name = pick(rng, ("merge_intervals", "merge_ranges"))
    cmp = "<=" if touching else "<"
    source = (f"def {name}(intervals):\n    out = []\n    for start, end in sorted(intervals):\n"
              f"        if out and start {cmp} out[-1][1]:\n            out[-1][1] = max(out[-1][1], end)\n"
              f"        else:\n            out.append([start, end])\n    return out\n")
    def oracle(intervals: list[list[int]]) -> list[list[int]]:
        merged: list[list[int]] = []
        for s, e in sorted(intervals):
            joins = bool(merged) and (s <= merged[-1][1] if touching else s < merged[-1][1])
            if joins:
                merged[-1] = [merged[-1][0], max(merged[-1][1], e)]
            else:
                merged.append([s, e])
        return merged
    def make() -> tuple:
        starts = [rng.randint(0, 30) for _ in range(rng.randint(2, 6))]
        return ([[s, s + rng.randint(0, 8)] for s in starts],)
    rule = "intervals that overlap or touch (share an end point)" if touching else "intervals that overlap (merely touching ones stay separate)"
    return Problem(f"merge:{touching}", name, "intervals",
                   f"returns the list of [start, end] intervals after merging {rule}, sorted by start",
                   source, oracle, _cases(rng, make, (([],), ([[1, 3], [3, 5]],))))


def rpn(rng: random.Random) -> Problem:
    ops = "".join(sorted(rng.sample("+-*/", rng.randint(2, 4))))
    name = pick(rng, ("eval_rpn", "rpn_calculator"))
    source = (f"def {name}(tokens):\n    stack = []\n    for t in tokens:\n        if t in {ops!r}:\n"
              f"            b, a = stack.pop(), stack.pop()\n"
              f"            stack.append(a + b if t == '+' else a - b if t == '-' else a * b if t == '*' else a // b)\n"
              f"        else:\n            stack.append(int(t))\n    return stack[-1]\n")
    def oracle(tokens: list[str]) -> int:
        stack: list[int] = []
        for t in tokens:
            if t in ops:
                b, a = stack.pop(), stack.pop()
                stack.append({"+": a + b, "-": a - b, "*": a * b, "/": a // b if b else None}[t])
            else:
                stack.append(int(t))
        return stack[-1]
    def make() -> tuple:
        tokens = [str(rng.randint(0, 20))]
        for _ in range(rng.randint(1, 4)):
            op = pick(rng, ops)
            tokens += [str(rng.randint(1, 9) if op == "/" else rng.randint(-5, 20)), op]  # no division by 0
        return (tokens,)
    return Problem(f"rpn:{ops}", name, "tokens",
                   f"evaluates the reverse Polish notation expression given as a list of string tokens (integers and the operators {' '.join(ops)}) and returns the integer result" + (" ('/' is floor division, like Python's //)" if "/" in ops else ""),
                   source, oracle, _cases(rng, make, ((["7"],),)))


def text_stats(rng: random.Random) -> Problem:
    key_names = rng.sample(("words", "longest", "top_letter", "vowels", "unique", "capitalized"), 3)
    name = pick(rng, ("text_stats", "describe_text"))
    parts = {
        "words": ("the number of words (split on whitespace)", "len(words)"),
        "longest": ("the longest word (the first one on ties, '' if none)", "max(words, key=len) if words else ''"),
        "top_letter": ("the most frequent letter, lowercase, case-insensitive (the alphabetically first on ties, '' if none)",
                       "min(counts, key=lambda c: (-counts[c], c)) if counts else ''"),
        "vowels": ("the number of vowels a, e, i, o, u (case-insensitive)", "sum(1 for c in text.lower() if c in 'aeiou')"),
        "unique": ("the number of distinct words, ignoring case", "len({w.lower() for w in words})"),
        "capitalized": ("the number of words whose first character is an uppercase letter", "sum(1 for w in words if w[0].isupper())"),
    }
    lines = ",\n".join(f"        {k!r}: {parts[k][1]}" for k in key_names)
    source = (f"def {name}(text):\n    words = text.split()\n    counts = {{}}\n    for c in text.lower():\n"
              f"        if c.isalpha():\n            counts[c] = counts.get(c, 0) + 1\n    return {{\n{lines},\n    }}\n")
    def oracle(text: str) -> dict:
        words = text.split()
        letters = Counter(c for c in text.lower() if c.isalpha())
        top = sorted(letters.items(), key=lambda kv: (-kv[1], kv[0]))
        full = {"words": len(words), "longest": next((w for w in words if len(w) == max(map(len, words))), ""),
                "top_letter": top[0][0] if top else "", "vowels": sum(text.lower().count(v) for v in "aeiou"),
                "unique": len(set(map(str.lower, words))), "capitalized": len([w for w in words if w[:1].isupper()])}
        return {k: full[k] for k in key_names}
    doc = "returns a dict with exactly these keys: " + "; ".join(f"'{k}': {parts[k][0]}" for k in key_names)
    styles = (str.upper, str.capitalize, str.lower, str.lower)
    make = lambda: (" ".join(pick(rng, styles)(w) for w in _words(rng, rng.randint(1, 6))),)  # noqa: E731
    return Problem(f"stats:{','.join(key_names)}", name, "text", doc, source, oracle, _cases(rng, make, (("",),)))


FAMILIES: dict[int, tuple[Callable[[random.Random], Problem], ...]] = {
    1: (add_constant, scale_list, count_char, divisible),
    2: (sum_multiples, reverse_words, count_letters, digit_sum, gcd_times),
    3: (fibonacci, fizzbuzz, running_extreme, palindrome, second_largest, primes_upto),
    4: (run_length, caesar, balanced, flatten, common_prefix),
    5: (roman_to_int, merge_intervals, rpn, text_stats),
}


def render(p: Problem) -> dict:
    """Example fields: question with the first case as the example, one assert per case."""
    inputs = p.cases()
    calls = [f"{p.name}({', '.join(map(repr, args))})" for args in inputs]
    expected = [p.oracle(*args) for args in inputs]
    question = (f"Write a Python function `{p.name}({p.args})` that {p.doc}. "
                f"For example, `{calls[0]}` returns `{expected[0]!r}`")
    tests = "".join(f"assert {call} == {want!r}, {call!r}\n" for call, want in zip(calls, expected))
    return {"question": question, "tests": tests, "entry_point": p.name, "solution": p.source,
            "meta": {"family": p.key.split(":")[0]}}


def build(rng: random.Random, level: int) -> tuple[str, Problem]:
    problem = pick(rng, FAMILIES[level])(rng)
    return problem.key, problem


def make_task(name: str = "code", levels: tuple[int, ...] = (1, 2, 3, 4, 5)) -> GeneratedTask:
    return GeneratedTask(name=name, kind="code", build=build, finish=render, levels=levels)
