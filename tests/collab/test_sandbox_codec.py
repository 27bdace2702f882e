"""The sandbox's value codec (collab/sandbox_codec.py): hand-written trees, both directions."""

from __future__ import annotations

import math

import pytest

from collab.sandbox_codec import MAX_DEPTH, CodecError, decode, dumps, encode, loads

CASES = [
    (None, None),
    (True, True),
    (False, False),
    ("héllo\n", "héllo\n"),
    (0, ["i", "0"]),
    (-7, ["i", "-7"]),
    (2**70, ["i", "1180591620717411303424"]),
    (0.5, ["f", "0.5"]),
    (-0.0, ["f", "-0.0"]),
    (float("inf"), ["f", "inf"]),
    (float("-inf"), ["f", "-inf"]),
    (1 + 2j, ["c", "1.0", "2.0"]),
    (b"\x00\xff", ["b", "00ff"]),
    ([1, "a"], ["l", [["i", "1"], "a"]]),
    ((), ["t", []]),
    ((None, (True,)), ["t", [None, ["t", [True]]]]),
    ({3}, ["s", [["i", "3"]]]),
    (frozenset(), ["fs", []]),
    ({"k": [2.5]}, ["d", [["k", ["l", [["f", "2.5"]]]]]]),
    ({(1, 2): None}, ["d", [[["t", [["i", "1"], ["i", "2"]]], None]]]),
]


@pytest.mark.parametrize("value, tree", CASES, ids=[repr(v)[:30] for v, _ in CASES])
def test_values_encode_to_hand_written_trees_and_back(value, tree):
    assert encode(value) == tree
    back = decode(tree)
    assert back == value and type(back) is type(value)


def test_nan_round_trips_as_a_float():
    assert encode(float("nan")) == ["f", "nan"]
    back = decode(["f", "nan"])
    assert type(back) is float and math.isnan(back)


def test_bool_stays_bool_and_int_stays_int():
    assert decode(encode([True, 1])) == [True, 1]
    assert [type(x) for x in decode(encode([True, 1]))] == [bool, int]


def test_subclasses_cross_as_their_plain_base_value():
    class Same(int):
        def __eq__(self, other):
            return True

        __hash__ = int.__hash__

    class Loud(str):
        pass

    back = decode(encode([Same(5), Loud("x")]))
    assert back == [5, "x"] and [type(x) for x in back] == [int, str]
    assert back[0] != 6  # the forged __eq__ stayed behind


def test_other_objects_need_a_handle_function():
    with pytest.raises(CodecError, match="object"):
        encode(object())
    kept = []
    tree = encode([len, len], ref=lambda obj: kept.append(obj) or len(kept) - 1)
    assert tree == ["l", [["r", 0], ["r", 1]]] and kept == [len, len]
    assert decode(tree, ref=lambda i: f"handle {i}") == ["handle 0", "handle 1"]


@pytest.mark.parametrize(
    "tree",
    [
        ["r", 0],  # a handle without a handle function
        ["x", "1"],  # unknown tag
        [],
        ["i", "1.5"],
        ["i", "1_000"],
        ["i", 7],  # numbers travel as strings
        ["f", "zero"],
        ["b", "zz"],
        ["s", [["l", []]]],  # unhashable element
        ["d", [[["l", []], None]]],  # unhashable key
        ["d", [["k"]]],  # not a pair
        ["l", "abc"],
        {"__class__": "x"},  # JSON objects are not values
        1.5,  # bare JSON numbers are not values
    ],
)
def test_malformed_trees_are_refused(tree):
    with pytest.raises(CodecError):
        decode(tree)


def test_depth_and_size_are_bounded():
    deep = "x"
    for _ in range(MAX_DEPTH + 1):
        deep = ["l", [deep]]
    with pytest.raises(CodecError, match="deeper"):
        decode(deep)
    nested: list = []
    for _ in range(MAX_DEPTH + 1):
        nested = [nested]
    with pytest.raises(CodecError, match="deeper"):
        encode(nested)
    with pytest.raises(CodecError, match="values"):
        decode(["l", [None] * 1_000_001])


def test_huge_integers_and_broken_json_are_codec_errors():
    with pytest.raises(CodecError):
        decode(["i", "9" * 5000])  # beyond Python's int digit limit
    with pytest.raises(CodecError):
        loads("[" * 100_000)
    assert loads(dumps({"a": (1,)})) == {"a": (1,)}
    assert "\n" not in dumps("two\nlines").rstrip("\n")
