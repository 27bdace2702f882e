"""Built-in `science` task: generated, verifiable multiple-choice questions (4 choices).

Families, by level: states of matter from melting/boiling points (water in C at level 1, other
substances in C at 2, in kelvin at 3); unit conversions (whole units at 1, decimals at 2, speeds and
temperatures at 3, two-step at 4); planet order (famous facts at 1, n-th from the Sun at 2, the
farthest/closest of four at 3); chemical elements (common symbols at 1, Latin-derived symbols at 2,
protons at 3, neutrons at 4); physics formulas computed from drawn parameters (v = d/t and F = m*a
at 2, density and Ohm's law at 3, kinetic energy and weight at 4, two- and three-step problems at
5). Numeric distractors are the typical mistakes (wrong factor of ten, inverted formula, a missed
step), so guessing from the shape of the numbers does not work. The correct letter is uniform.
"""

from __future__ import annotations

import random

from collab.tasks._rng import GeneratedTask, fmt_num, mcq_fields, numeric_distractors, pick

Built = tuple[str, dict]
STATES = ("solid", "liquid", "gas", "plasma")  # plasma: a plausible distractor, never the answer

# name -> (melting point C, boiling point C) at 1 atm
SUBSTANCES: dict[str, tuple[float, float]] = {
    "water": (0, 100), "ethanol": (-114, 78), "iron": (1538, 2862), "mercury": (-39, 357),
    "nitrogen": (-210, -196), "oxygen": (-218, -183), "lead": (327, 1749), "aluminium": (660, 2470),
    "copper": (1085, 2562), "gold": (1064, 2856), "sodium chloride": (801, 1465),
    "ammonia": (-78, -33), "methane": (-182, -162),
}
PLANETS = ("Mercury", "Venus", "Earth", "Mars", "Jupiter", "Saturn", "Uranus", "Neptune")
PLANET_FACTS = {  # level-1 fact -> planet
    "is closest to the Sun": "Mercury", "is the largest planet in the Solar System": "Jupiter",
    "is known as the Red Planet": "Mars", "is farthest from the Sun": "Neptune",
    "is the planet we live on": "Earth",
}
ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth")
# name, symbol, atomic number Z, mass number of the most common isotope, symbol tier (1 common)
ELEMENTS = (
    ("hydrogen", "H", 1, 1, 1), ("helium", "He", 2, 4, 1), ("lithium", "Li", 3, 7, 2),
    ("carbon", "C", 6, 12, 1), ("nitrogen", "N", 7, 14, 1), ("oxygen", "O", 8, 16, 1),
    ("fluorine", "F", 9, 19, 2), ("neon", "Ne", 10, 20, 1), ("sodium", "Na", 11, 23, 2),
    ("magnesium", "Mg", 12, 24, 2), ("aluminium", "Al", 13, 27, 1), ("silicon", "Si", 14, 28, 2),
    ("phosphorus", "P", 15, 31, 2), ("sulfur", "S", 16, 32, 1), ("chlorine", "Cl", 17, 35, 2),
    ("argon", "Ar", 18, 40, 2), ("potassium", "K", 19, 39, 2), ("calcium", "Ca", 20, 40, 1),
    ("iron", "Fe", 26, 56, 2), ("copper", "Cu", 29, 63, 2), ("zinc", "Zn", 30, 64, 1),
    ("silver", "Ag", 47, 107, 2), ("tin", "Sn", 50, 120, 2), ("gold", "Au", 79, 197, 2),
    ("lead", "Pb", 82, 208, 2), ("mercury", "Hg", 80, 202, 2), ("nickel", "Ni", 28, 58, 1),
)


WHERE = {"solid": "below the melting point", "liquid": "between the two", "gas": "above the boiling point"}


def _state(temp_c: float, melt: float, boil: float) -> str:
    return "solid" if temp_c < melt else ("liquid" if temp_c < boil else "gas")


def states(rng: random.Random, level: int) -> Built:
    name = "water" if level == 1 else pick(rng, [s for s in SUBSTANCES if s != "water"])
    melt, boil = SUBSTANCES[name]
    # A temperature at least 5 degrees away from both transitions, so rounding cannot flip it.
    temp_c = melt
    while min(abs(temp_c - melt), abs(temp_c - boil)) < 5:
        temp_c = rng.randint(int(melt) - 120, int(boil) + 120)
    state = _state(temp_c, melt, boil)
    steps = [f"At 1 atm {name} melts at {fmt_num(melt)} C and boils at {fmt_num(boil)} C."]
    if level == 3:
        kelvin = temp_c + 273
        temp_c = kelvin - 273.15
        shown = f"{kelvin} K"
        steps.insert(0, f"{kelvin} K = {kelvin} - 273.15 = {fmt_num(temp_c)} C.")
    else:
        shown = f"{temp_c} C"
    steps.append(f"{fmt_num(temp_c)} C is {WHERE[state]}, so it is a {state}.")
    q = f"At a pressure of 1 atm, what is the state of {name} at {shown}?"
    return f"state:{name}:{shown}", mcq_fields(rng, state, [s for s in STATES if s != state], steps, q, "states")


# (from unit, to unit, factor) for whole-number conversions
SIMPLE_UNITS = (("meters", "centimeters", 100), ("kilograms", "grams", 1000), ("liters", "milliliters", 1000),
                ("kilometers", "meters", 1000), ("minutes", "seconds", 60), ("hours", "minutes", 60))
DECIMAL_UNITS = (("kilometers", "meters", 1000), ("kilograms", "grams", 1000), ("centimeters", "millimeters", 10),
                 ("grams", "kilograms", 0.001), ("milliliters", "liters", 0.001), ("days", "hours", 24))


def units(rng: random.Random, level: int) -> Built:
    if level == 1:
        src, dst, f = pick(rng, SIMPLE_UNITS)
        n = rng.randint(2, 20)
        return _convert(rng, n, src, dst, f, [n * f / 10, n * f * 10, n])
    if level == 2:
        src, dst, f = pick(rng, DECIMAL_UNITS)
        n = rng.randint(2, 95) * 0.25 if f >= 1 else rng.randint(105, 9900)
        return _convert(rng, n, src, dst, f, [n * f * 10, n * f / 10, n * f * 100])
    if level == 3:
        if rng.randrange(2):
            v = 18 * rng.randint(1, 12)  # multiples of 18 km/h are whole m/s
            steps = ["1 km/h = 1000 m / 3600 s, so divide by 3.6.", f"{v} / 3.6 = {fmt_num(v / 3.6)}"]
            q = f"A car drives at {v} km/h. What is its speed in meters per second?"
            return f"kmh:{v}", mcq_fields(rng, fmt_num(v / 3.6), numeric_distractors(rng, v / 3.6, [v * 3.6, v / 36, v / 3.6 * 10]),
                                          steps, q, "units")
        c = 5 * rng.randint(-8, 40)
        f_ = c * 9 / 5 + 32
        steps = ["F = C * 9 / 5 + 32.", f"{c} * 9 / 5 = {fmt_num(c * 9 / 5)}", f"{fmt_num(c * 9 / 5)} + 32 = {fmt_num(f_)}"]
        q = f"What is {c} degrees Celsius in degrees Fahrenheit?"
        return f"c2f:{c}", mcq_fields(rng, fmt_num(f_), numeric_distractors(rng, f_, [c * 5 / 9 + 32, c * 9 / 5, (c + 32) * 9 / 5]),
                                      steps, q, "units")
    h, m = rng.randint(2, 5), rng.randint(1, 59)
    total = (h * 60 + m) * 60
    steps = [f"{h} hours = {h} * 60 = {h * 60} minutes.", f"{h * 60} + {m} = {h * 60 + m} minutes.",
             f"{h * 60 + m} * 60 = {total} seconds."]
    q = f"How many seconds are there in {h} hours and {m} minutes?"
    return f"hms:{h}:{m}", mcq_fields(rng, str(total), numeric_distractors(rng, total, [h * 3600 + m, (h * 100 + m) * 60, (h * 60 + m) * 100]),
                                      steps, q, "units")


def _convert(rng: random.Random, n: float, src: str, dst: str, f: float, mistakes: list[float]) -> Built:
    value = n * f
    op = f"* {fmt_num(f)}" if f >= 1 else f"/ {fmt_num(1 / f)}"
    steps = [f"1 {src[:-1]} = {fmt_num(f)} {dst}.", f"{fmt_num(n)} {op} = {fmt_num(value)}"]
    q = f"How many {dst} are in {fmt_num(n)} {src}?"
    return (f"unit:{fmt_num(n)}:{src}:{dst}",
            mcq_fields(rng, fmt_num(value), numeric_distractors(rng, value, mistakes), steps, q, "units"))


def planets(rng: random.Random, level: int) -> Built:
    if level == 1:
        fact = pick(rng, list(PLANET_FACTS))
        right = PLANET_FACTS[fact]
        wrong = [p for p in PLANETS if p != right]
        rng.shuffle(wrong)
        return f"planetfact:{fact}", mcq_fields(rng, right, wrong, [f"{right} {fact}."], f"Which planet {fact}?", "planets")
    if level == 2:
        k = rng.randrange(8)
        near = sorted((p for p in range(8) if p != k), key=lambda p: abs(p - k))[:3]
        q = f"Which planet is the {ORDINALS[k]} planet from the Sun?"
        order = ", ".join(PLANETS)
        return f"planetnth:{k}", mcq_fields(rng, PLANETS[k], [PLANETS[p] for p in near],
                                            [f"From the Sun: {order}.", f"Number {k + 1} is {PLANETS[k]}."], q, "planets")
    four = sorted(rng.sample(range(8), 4))
    far = rng.randrange(2) == 0
    right = four[-1] if far else four[0]
    word = "farthest from" if far else "closest to"
    names = [PLANETS[p] for p in four]
    q = f"Which of these planets is {word} the Sun: {', '.join(names[:3])} or {names[3]}?"
    steps = [f"From the Sun: {', '.join(PLANETS)}.", f"Of the four, {PLANETS[right]} is {word} the Sun."]
    return (f"planetext:{word}:{four}",
            mcq_fields(rng, PLANETS[right], [PLANETS[p] for p in four if p != right], steps, q, "planets"))


def elements(rng: random.Random, level: int) -> Built:
    pool = [e for e in ELEMENTS if level > 2 or e[4] == level]
    name, sym, z, mass, _ = pick(rng, pool)
    if level <= 2:
        others = [e[1] for e in ELEMENTS if e[1] != sym and e[1][0] in (sym[0], name[0].upper())]
        fakes = [name[:2].capitalize(), name[0].upper() + name[-1], name[0].upper() + name[2]]
        rest = [e[1] for e in ELEMENTS if e[1] not in others]
        rng.shuffle(others)
        rng.shuffle(rest)
        q = f"What is the chemical symbol of {name}?"
        wrong = fakes[:1] + others + fakes[1:] + rest  # look-alike symbols first
        return f"symbol:{name}", mcq_fields(rng, sym, wrong, [f"The symbol of {name} is {sym}."], q, "elements")
    if level == 3:
        q = f"How many protons are in the nucleus of a {name} atom?"
        steps = [f"The number of protons is the atomic number.", f"{name} has atomic number {z}."]
        return f"protons:{name}", mcq_fields(rng, str(z), numeric_distractors(rng, z, [mass, z + 1, z - 1, mass - z]), steps, q, "elements")
    q = f"An atom of {name} has mass number {mass}. How many neutrons does it have?"
    steps = [f"{name} has atomic number {z}, so it has {z} protons.", f"Neutrons = {mass} - {z} = {mass - z}."]
    return (f"neutrons:{name}:{mass}",
            mcq_fields(rng, str(mass - z), numeric_distractors(rng, mass - z, [z, mass, mass + z]), steps, q, "elements"))


def formulas(rng: random.Random, level: int) -> Built:
    """Physics computed from drawn parameters; levels 2..5."""
    kind = rng.randrange(2)
    return (_two_step(rng) if level == 5 else
            _one_formula(rng, level, kind) if level in (2, 3) else _squared_or_decimal(rng, kind))


def _one_formula(rng: random.Random, level: int, kind: int) -> Built:
    """One multiplication or division: v = d/t, F = m*a (level 2); density, Ohm's law (level 3)."""
    if level == 2 and kind == 0:
        v, t = rng.randint(2, 30), rng.randint(2, 12)
        d = v * t
        q = f"A cyclist rides {d} meters in {t} seconds at constant speed. What is the speed in m/s?"
        return f"speed:{d}/{t}", _numeric(rng, v, [d * t, d - t, t / d], ["v = d / t.", f"{d} / {t} = {v}"], q)
    if level == 2:
        m, a = rng.randint(2, 50), rng.randint(2, 10)
        q = f"A net force accelerates a {m} kg cart at {a} m/s^2. What is the force in newtons?"
        return f"force:{m}*{a}", _numeric(rng, m * a, [m / a, m + a, m * a * 10], ["F = m * a.", f"{m} * {a} = {m * a}"], q)
    if level == 3 and kind == 0:
        rho, vol = rng.randint(2, 40) / 4, rng.randint(2, 60)
        mass = rho * vol
        q = f"A block has a mass of {fmt_num(mass)} g and a volume of {vol} cm^3. What is its density in g/cm^3?"
        return f"density:{fmt_num(mass)}/{vol}", _numeric(rng, rho, [vol / mass, mass * vol, mass - vol],
                                                          ["density = mass / volume.", f"{fmt_num(mass)} / {vol} = {fmt_num(rho)}"], q)
    i, r = rng.randint(1, 12) / 2, rng.randint(2, 100)
    q = f"A current of {fmt_num(i)} A flows through a {r} ohm resistor. What is the voltage across it in volts?"
    return f"ohm:{fmt_num(i)}*{r}", _numeric(rng, i * r, [r / i, i / r, i + r], ["V = I * R.", f"{fmt_num(i)} * {r} = {fmt_num(i * r)}"], q)


def _squared_or_decimal(rng: random.Random, kind: int) -> Built:
    """Level 4: kinetic energy (a square and a half) or weight (a decimal factor g)."""
    if kind == 0:
        m, v = rng.randint(2, 80), rng.randint(2, 30)
        ke = 0.5 * m * v * v
        q = f"A {m} kg object moves at {v} m/s. What is its kinetic energy in joules?"
        steps = ["KE = 1/2 * m * v^2.", f"{v}^2 = {v * v}", f"1/2 * {m} * {v * v} = {fmt_num(ke)}"]
        return f"ke:{m}:{v}", _numeric(rng, ke, [m * v * v, 0.5 * m * v, m * v], steps, q)
    m = rng.randint(2, 120)
    q = f"What is the weight in newtons of a {m} kg mass on Earth (g = 9.8 m/s^2)?"
    return f"weight:{m}", _numeric(rng, m * 9.8, [m / 9.8, m, m * 98], ["W = m * g.", f"{m} * 9.8 = {fmt_num(m * 9.8)}"], q)


def _numeric(rng: random.Random, value: float, mistakes: list[float], steps: list[str], q: str) -> dict:
    return mcq_fields(rng, fmt_num(value), numeric_distractors(rng, value, mistakes), steps, q, "formulas")


def _two_step(rng: random.Random) -> Built:
    kind = rng.randrange(3)
    if kind == 0:
        a, t, m = rng.randint(1, 6), rng.randint(2, 12), rng.randint(800, 2000)
        v = a * t
        q = f"A car of mass {m} kg speeds up from rest to {v} m/s in {t} s. What net force acts on it in newtons?"
        steps = [f"a = v / t = {v} / {t} = {a} m/s^2.", "F = m * a.", f"{m} * {a} = {m * a}"]
        return f"carforce:{m}:{v}:{t}", _numeric(rng, m * a, [m * v, m * v * t, m / a], steps, q)
    if kind == 1:
        m, h, t = rng.randint(50, 900), rng.randint(3, 40), rng.randint(4, 60)
        work = m * 9.8 * h
        q = (f"A crane lifts a {m} kg load {h} m straight up in {t} s at constant speed (g = 9.8 m/s^2). "
             f"What is its average power in watts?")
        steps = [f"W = m * g * h = {m} * 9.8 * {h} = {fmt_num(work)} J.", "P = W / t.",
                 f"{fmt_num(work)} / {t} = {fmt_num(work / t)}"]
        return f"power:{m}:{h}:{t}", _numeric(rng, work / t, [work, m * h / t, work * t], steps, q)
    m, t1, t2 = rng.randint(120, 2500), rng.randint(5, 40), rng.randint(45, 95)
    heat = m * 4.18 * (t2 - t1)
    q = (f"How many joules heat {m} g of water from {t1} C to {t2} C? "
         f"(specific heat of water: 4.18 J/(g*C))")
    steps = ["Q = m * c * (T2 - T1).", f"{t2} - {t1} = {t2 - t1}", f"{m} * 4.18 * {t2 - t1} = {fmt_num(heat)}"]
    return f"heat:{m}:{t1}:{t2}", _numeric(rng, heat, [m * 4.18 * t2, m * (t2 - t1), m * 4.18 * (t2 + t1)], steps, q)


FAMILIES = {
    1: (states, units, planets, elements),
    2: (states, units, planets, elements, formulas),
    3: (states, units, planets, elements, formulas),
    4: (units, elements, formulas),
    5: (formulas,),
}


def build(rng: random.Random, level: int) -> Built:
    return pick(rng, FAMILIES[level])(rng, level)


def make_task(name: str = "science", levels: tuple[int, ...] = (1, 2, 3, 4, 5)) -> GeneratedTask:
    return GeneratedTask(name=name, kind="mcq", build=build, levels=levels)
