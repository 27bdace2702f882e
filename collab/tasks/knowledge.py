"""Built-in `knowledge` task: general-knowledge-style multiple choice (4 choices), verifiable.

Facts come from built-in tables (capitals and continents, antonyms, synonyms, young animals,
irregular plurals) or are computed (calendar arithmetic with `datetime`, Roman numerals). Levels:
1 famous capitals, antonyms, the next weekday/month; 2 less famous capitals, continents, synonyms,
weekday/month k steps later, Roman numerals up to 20; 3 "capital of which country", young
animals, plurals, leap-year Februaries, Roman numerals up to 100; 4 obscure capitals, the date
N days later, Roman numerals up to 1000; 5 days between two dates, the weekday of a date, Roman
numerals up to 3999. Distractors come from the same table (capitals of the same continent) or are
the typical slips (off by one day, a subtractive numeral read additively). The letter is uniform.
"""

from __future__ import annotations

import datetime as dt
import random

from collab.tasks._rng import GeneratedTask, mcq_fields, numeric_distractors, pick

Built = tuple[str, dict]

# country, capital, continent, fame tier (1 famous .. 3 obscure)
COUNTRIES = (
    ("France", "Paris", "Europe", 1), ("Germany", "Berlin", "Europe", 1), ("Italy", "Rome", "Europe", 1),
    ("Spain", "Madrid", "Europe", 1), ("United Kingdom", "London", "Europe", 1), ("Japan", "Tokyo", "Asia", 1),
    ("China", "Beijing", "Asia", 1), ("Russia", "Moscow", "Europe", 1), ("Egypt", "Cairo", "Africa", 1),
    ("Mexico", "Mexico City", "North America", 1), ("Greece", "Athens", "Europe", 1),
    ("Portugal", "Lisbon", "Europe", 2), ("Austria", "Vienna", "Europe", 2), ("Norway", "Oslo", "Europe", 2),
    ("Sweden", "Stockholm", "Europe", 2), ("Poland", "Warsaw", "Europe", 2), ("Ireland", "Dublin", "Europe", 2),
    ("Canada", "Ottawa", "North America", 2), ("Australia", "Canberra", "Oceania", 2),
    ("Brazil", "Brasilia", "South America", 2), ("Argentina", "Buenos Aires", "South America", 2),
    ("India", "New Delhi", "Asia", 2), ("South Korea", "Seoul", "Asia", 2), ("Thailand", "Bangkok", "Asia", 2),
    ("Kenya", "Nairobi", "Africa", 2), ("Peru", "Lima", "South America", 2), ("Turkey", "Ankara", "Asia", 2),
    ("Netherlands", "Amsterdam", "Europe", 2), ("Denmark", "Copenhagen", "Europe", 2),
    ("Finland", "Helsinki", "Europe", 2), ("Hungary", "Budapest", "Europe", 2), ("Chile", "Santiago", "South America", 2),
    ("New Zealand", "Wellington", "Oceania", 3), ("Switzerland", "Bern", "Europe", 3),
    ("Morocco", "Rabat", "Africa", 3), ("Nigeria", "Abuja", "Africa", 3), ("Vietnam", "Hanoi", "Asia", 3),
    ("Pakistan", "Islamabad", "Asia", 3), ("Kazakhstan", "Astana", "Asia", 3), ("Bolivia", "Sucre", "South America", 3),
    ("Colombia", "Bogota", "South America", 3), ("Ecuador", "Quito", "South America", 3),
    ("Ghana", "Accra", "Africa", 3), ("Ethiopia", "Addis Ababa", "Africa", 3), ("Tanzania", "Dodoma", "Africa", 3),
    ("Mongolia", "Ulaanbaatar", "Asia", 3), ("Slovenia", "Ljubljana", "Europe", 3), ("Latvia", "Riga", "Europe", 3),
    ("Fiji", "Suva", "Oceania", 3), ("Papua New Guinea", "Port Moresby", "Oceania", 3),
    ("Cuba", "Havana", "North America", 3), ("Jamaica", "Kingston", "North America", 3),
    ("Honduras", "Tegucigalpa", "North America", 3),
)
CONTINENTS = ("Europe", "Asia", "Africa", "North America", "South America", "Oceania")
ANTONYMS = (("hot", "cold"), ("big", "small"), ("fast", "slow"), ("happy", "sad"), ("up", "down"),
            ("light", "dark"), ("open", "closed"), ("early", "late"), ("full", "empty"), ("old", "young"),
            ("hard", "soft"), ("strong", "weak"), ("wet", "dry"), ("rich", "poor"), ("loud", "quiet"))
SYNONYMS = (("big", "large"), ("quick", "rapid"), ("begin", "start"), ("smart", "clever"), ("angry", "furious"),
            ("tiny", "minute"), ("gift", "present"), ("shut", "close"), ("sick", "ill"), ("choose", "select"),
            ("brave", "courageous"), ("help", "assist"), ("end", "finish"), ("buy", "purchase"))
YOUNG = (("dog", "puppy"), ("cat", "kitten"), ("cow", "calf"), ("horse", "foal"), ("sheep", "lamb"),
         ("goat", "kid"), ("frog", "tadpole"), ("kangaroo", "joey"), ("swan", "cygnet"), ("goose", "gosling"),
         ("deer", "fawn"), ("owl", "owlet"), ("bear", "cub"), ("duck", "duckling"), ("eagle", "eaglet"))
PLURALS = (("mouse", "mice"), ("child", "children"), ("foot", "feet"), ("tooth", "teeth"), ("man", "men"),
           ("goose", "geese"), ("ox", "oxen"), ("woman", "women"),
           ("crisis", "crises"), ("leaf", "leaves"), ("knife", "knives"), ("phenomenon", "phenomena"))
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")


def capitals(rng: random.Random, level: int) -> Built:
    tier = rng.choice((2, 3)) if level == 3 else {1: 1, 2: 2, 4: 3}[level]
    country, capital, continent, _ = pick(rng, [c for c in COUNTRIES if c[3] == tier])
    same = [c for c in COUNTRIES if c[2] == continent and c[0] != country]
    rest = [c for c in COUNTRIES if c[2] != continent]
    rng.shuffle(same)
    rng.shuffle(rest)
    pool = same + rest  # same-continent neighbours are the plausible distractors
    fact = f"{capital} is the capital of {country}."
    if level == 2 and rng.randrange(2):
        q = f"On which continent is {country}?"
        return f"continent:{country}", mcq_fields(rng, continent, rng.sample(CONTINENTS, len(CONTINENTS)),
                                                  [f"{country} is in {continent}."], q, "capitals")
    if level == 3:
        q = f"{capital} is the capital of which country?"
        return f"capitalof:{capital}", mcq_fields(rng, country, [c[0] for c in pool], [fact], q, "capitals")
    q = f"What is the capital of {country}?"
    return f"capital:{country}", mcq_fields(rng, capital, [c[1] for c in pool], [fact], q, "capitals")


def words(rng: random.Random, level: int) -> Built:
    table, relation = {1: (ANTONYMS, "opposite"), 2: (SYNONYMS, "synonym"), 3: pick(rng, ((YOUNG, "young"), (PLURALS, "plural")))}[level]
    base, right = pick(rng, table)
    others = [b for a, b in table if b != right and a != right]  # other answers of the same relation
    rng.shuffle(others)
    if relation == "opposite":
        q, step = f"Which word means the opposite of '{base}'?", f"The opposite of '{base}' is '{right}'."
    elif relation == "synonym":
        q, step = f"Which word means the same as '{base}'?", f"'{base}' and '{right}' mean the same."
    elif relation == "young":
        q, step = f"What is a young {base} called?", f"A young {base} is a {right}."
    else:
        wrong = [base + "s", base + "es", base + "en"]  # the regular-plural slips
        q, step = f"What is the plural of '{base}'?", f"'{base}' has the irregular plural '{right}'."
        return f"plural:{base}", mcq_fields(rng, right, wrong + others, [step], q, "words")
    return f"{relation}:{base}", mcq_fields(rng, right, others, [step], q, "words")


def calendar(rng: random.Random, level: int) -> Built:
    if level <= 2:
        return _cycle(rng, level)
    if level == 3:
        return _february(rng)
    start = EPOCH + dt.timedelta(days=rng.randrange(365 * 40))
    if level == 4:
        return _date_after(rng, start)
    return _days_between(rng, start) if rng.randrange(2) else _weekday_of(rng, start)


def _cycle(rng: random.Random, level: int) -> Built:
    """The weekday or month k steps after a given one (k = 1 at level 1)."""
    names = pick(rng, (WEEKDAYS, MONTHS))
    unit, step = ("day of the week", "day") if names is WEEKDAYS else ("month", "month")
    start = rng.randrange(len(names))
    k = 1 if level == 1 else rng.randint(2, 60 if names is WEEKDAYS else 30)
    right = names[(start + k) % len(names)]
    wrong = [names[(start + k + d) % len(names)] for d in (1, -1, 2, -2)]
    q = f"Which {unit} comes {k} {step}{'s' if k > 1 else ''} after {names[start]}?"
    steps = [f"{k} mod {len(names)} = {k % len(names)}.", f"{k % len(names)} after {names[start]} is {right}."]
    return f"cycle:{unit}:{start}+{k}", mcq_fields(rng, right, wrong, steps[1:] if k == 1 else steps, q, "calendar")


def _february(rng: random.Random) -> Built:
    year = rng.randint(1800, 2100)
    right = 29 if _leap(year) else 28
    why = "divisible by 4" + (" and not a century year" if year % 100 else ", and a century year divisible by 400")
    step = f"{year} is {'a leap year (' + why + ')' if _leap(year) else 'not a leap year'}, so February has {right} days."
    q = f"How many days does February have in the year {year}?"
    return f"feb:{year}", mcq_fields(rng, str(right), ["30", "31", "28", "29"], [step], q, "calendar")


def _date_after(rng: random.Random, start: dt.date) -> Built:
    n = rng.randint(20, 400)
    end = start + dt.timedelta(days=n)
    wrong = [_date(end + dt.timedelta(days=d)) for d in (1, -1, 30, -30, 7)]  # off by one day or month
    day = start.timetuple().tm_yday
    steps = [f"{_date(start)} is day {day} of {start.year}.", f"{day} + {n} = {day + n}.",
             f"Day {day + n} counted from January 1, {start.year} is {_date(end)}."]
    q = f"What date is {n} days after {_date(start)}?"
    return f"after:{start}+{n}", mcq_fields(rng, _date(end), wrong, steps, q, "calendar")


def _days_between(rng: random.Random, start: dt.date) -> Built:
    end = start + dt.timedelta(days=rng.randint(40, 900))
    n = (end - start).days
    d1, d2 = start.timetuple().tm_yday, end.timetuple().tm_yday
    years = sum(366 if _leap(y) else 365 for y in range(start.year, end.year))
    steps = [f"{_date(start)} is day {d1} of {start.year}; {_date(end)} is day {d2} of {end.year}.",
             f"The whole years from {start.year} to {end.year} add {years} days.", f"{years} + {d2} - {d1} = {n}."]
    q = f"How many days are there from {_date(start)} to {_date(end)}?"
    wrong = numeric_distractors(rng, n, [n + 1, n - 1, n + 30])  # counting both ends, a month slip
    return f"between:{start}:{end}", mcq_fields(rng, str(n), wrong, steps, q, "calendar")


def _weekday_of(rng: random.Random, start: dt.date) -> Built:
    right, first = WEEKDAYS[start.weekday()], WEEKDAYS[EPOCH.weekday()]
    wrong = [WEEKDAYS[(start.weekday() + d) % 7] for d in (1, -1, 2)]
    n = (start - EPOCH).days
    steps = [f"{_date(EPOCH)} was a {first}.", f"{_date(start)} is {n} days later.",
             f"{n} mod 7 = {n % 7}, and {n % 7} days after {first} is {right}."]
    q = f"On which day of the week was {_date(start)}?"
    return f"weekday:{start}", mcq_fields(rng, right, wrong, steps, q, "calendar")


EPOCH = dt.date(2000, 1, 1)  # generated dates lie in 2000..2039


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _date(d: dt.date) -> str:
    return f"{MONTHS[d.month - 1]} {d.day}, {d.year}"


ROMAN = ((1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"), (50, "L"), (40, "XL"),
         (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I"))


def to_roman(n: int) -> str:
    out = []
    for value, letters in ROMAN:
        count, n = divmod(n, value)
        out.append(letters * count)
    return "".join(out)


def roman(rng: random.Random, level: int) -> Built:
    n = rng.randint(2, {2: 20, 3: 100, 4: 1000, 5: 3999}[level])
    text = to_roman(n)
    additive = sum(dict((l, v) for v, l in ROMAN if len(l) == 1)[c] for c in text)  # IV read as 6
    q = f"What number does the Roman numeral {text} represent?"
    return (f"roman:{n}",
            mcq_fields(rng, str(n), numeric_distractors(rng, n, [additive, n + 10, n - 1, n + 1]),
                       [_roman_parts(n), f"The total is {n}."], q, "roman"))


def _roman_parts(n: int) -> str:
    parts = []
    for value, letters in ROMAN:
        count, n = divmod(n, value)
        if count:
            parts.append(f"{letters * count} = {value * count}")
    return "; ".join(parts) + "."


FAMILIES = {
    1: (capitals, words, calendar),
    2: (capitals, words, calendar, roman),
    3: (capitals, words, calendar, roman),
    4: (capitals, calendar, roman),
    5: (calendar, roman),
}


def build(rng: random.Random, level: int) -> Built:
    return pick(rng, FAMILIES[level])(rng, level)


def make_task(name: str = "knowledge", levels: tuple[int, ...] = (1, 2, 3, 4, 5)) -> GeneratedTask:
    return GeneratedTask(name=name, kind="mcq", build=build, levels=levels)
