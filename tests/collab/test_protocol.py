"""The help trigger and the composition operator C (collab/protocol.py)."""

from collab.protocol import HELP_TRIGGER, compose, requests_help, split_at_trigger

T = HELP_TRIGGER


def test_trigger_is_the_papers_sentence():
    assert T == "I need external assistance."


def test_requests_help_anywhere_and_only_on_the_exact_sentence():
    assert requests_help(f"<think>\nStep 1: hard.\n{T}")
    assert requests_help(f"{T} trailing")
    assert not requests_help("I need external assistance")  # no full stop: not the trigger
    assert not requests_help("i need external assistance.")


def test_split_at_trigger():
    assert split_at_trigger(f"abc{T}xyz") == ("abc", True)
    assert split_at_trigger("no help here") == ("no help here", False)
    assert split_at_trigger(T) == ("", True)


def test_compose_replaces_trigger_by_cloud():
    assert compose(f"<think>\nStep 1: a\n{T}", "Step 2: b</think>") == "<think>\nStep 1: a\nStep 2: b</think>"


def test_compose_discards_text_after_trigger():
    assert compose(f"pre {T} post junk \\boxed{{9}}", "CLOUD") == "pre CLOUD"


def test_compose_without_trigger_is_unchanged():
    assert compose("all local \\boxed{3}", "CLOUD") == "all local \\boxed{3}"


def test_compose_with_trigger_twice_cuts_at_the_first():
    assert compose(f"a{T}b{T}c", "X") == "aX"
