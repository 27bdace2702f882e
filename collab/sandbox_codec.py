"""Values between the judge and the sandboxed program, as plain tagged JSON.

The same source runs on both sides: the parent imports it, the sandbox driver execs this file's
text (standard library only, no imports of the project). Only the parent's `decode` matters for
the verdict: whatever the program does to its own copy, the parent builds nothing but genuine
built-in objects (and `Remote` handles it owns), so a value with a forged `__eq__` cannot cross.

    None, True, False, "text"       -> themselves (JSON null, true, false, string)
    7                               -> ["i", "7"]        (decimal: no float rounding)
    0.5, nan, -inf                  -> ["f", "0.5"], ["f", "nan"], ["f", "-inf"]
    1+2j                            -> ["c", "1.0", "2.0"]
    b"\\x00\\xff"                      -> ["b", "00ff"]
    [..], (..), {..}, frozenset(..) -> ["l", [..]], ["t", [..]], ["s", [..]], ["fs", [..]]
    {k: v}                          -> ["d", [[k, v], ..]]
    anything else                   -> ["r", id]  (a handle to an object that stays where it is)
"""

import json

MAX_DEPTH = 64  # nesting of containers
MAX_ITEMS = 1_000_000  # values in one message, all levels together


class CodecError(ValueError):
    pass


def encode(value, ref=None):
    """`value` as a JSON-able tree; objects of other types go through `ref(obj) -> int` if given."""
    budget = [MAX_ITEMS]
    return _enc(value, ref, 0, budget)


def decode(tree, ref=None):
    """The value an `encode` tree stands for; handles go through `ref(id) -> object`."""
    budget = [MAX_ITEMS]
    return _dec(tree, ref, 0, budget)


def dumps(value, ref=None):
    """One protocol line (no newline inside: JSON escapes them)."""
    return json.dumps(encode(value, ref), separators=(",", ":")) + "\n"


def loads(line, ref=None):
    try:
        tree = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise CodecError(f"not a JSON message: {exc}") from None
    return decode(tree, ref)


def _count(depth, budget):
    if depth > MAX_DEPTH:
        raise CodecError(f"nested deeper than {MAX_DEPTH}")
    budget[0] -= 1
    if budget[0] < 0:
        raise CodecError(f"more than {MAX_ITEMS} values")


def _enc(v, ref, depth, budget):
    _count(depth, budget)
    if v is None or v is True or v is False:
        return v
    if isinstance(v, str):
        return str.__str__(v)
    if isinstance(v, int):
        return ["i", int.__repr__(v)]
    if isinstance(v, float):
        return ["f", float.__repr__(v)]
    if isinstance(v, complex):
        return ["c", float.__repr__(v.real), float.__repr__(v.imag)]
    if isinstance(v, (bytes, bytearray)):
        return ["b", bytes(v).hex()]
    for kind, tag in ((list, "l"), (tuple, "t"), (set, "s"), (frozenset, "fs")):
        if isinstance(v, kind):
            return [tag, [_enc(x, ref, depth + 1, budget) for x in kind.__iter__(v)]]
    if isinstance(v, dict):
        items = dict.items(v)
        return ["d", [[_enc(k, ref, depth + 1, budget), _enc(x, ref, depth + 1, budget)]
                      for k, x in items]]
    if ref is None:
        raise CodecError(f"cannot send a {type(v).__name__}")
    return ["r", ref(v)]


_SCALARS = {
    "i": int,
    "f": float,
    "c": lambda re, im: complex(float(re), float(im)),
    "b": bytes.fromhex,
}
_CONTAINERS = {"l": list, "t": tuple, "s": set, "fs": frozenset}


def _dec(t, ref, depth, budget):
    _count(depth, budget)
    if t is None or t is True or t is False or type(t) is str:
        return t
    if type(t) is not list or not t or type(t[0]) is not str:
        raise CodecError(f"not a tagged value: {t!r:.80}")
    tag, args = t[0], t[1:]
    try:
        if tag in _SCALARS:
            if not all(type(a) is str for a in args):
                raise CodecError(f"{tag!r} takes strings")
            if tag == "i" and not (len(args) == 1 and args[0].lstrip("-").isdigit()):
                raise CodecError(f"not a decimal integer: {args!r:.80}")
            return _SCALARS[tag](*args)
        if tag in _CONTAINERS and len(args) == 1 and type(args[0]) is list:
            return _CONTAINERS[tag](_dec(x, ref, depth + 1, budget) for x in args[0])
        if tag == "d" and len(args) == 1 and type(args[0]) is list:
            pairs = [_pair(p, ref, depth + 1, budget) for p in args[0]]
            return dict(pairs)
        if tag == "r" and ref is not None and len(args) == 1 and type(args[0]) is int:
            return ref(args[0])
    except CodecError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:  # unhashable key, bad hex, huge int
        raise CodecError(f"bad {tag!r} value: {exc}") from None
    raise CodecError(f"unknown or malformed tag {tag!r:.20}")


def _pair(p, ref, depth, budget):
    if type(p) is not list or len(p) != 2:
        raise CodecError("a dict item must be a [key, value] pair")
    return _dec(p[0], ref, depth, budget), _dec(p[1], ref, depth, budget)
