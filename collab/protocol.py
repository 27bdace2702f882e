"""The help trigger and the composition operator C of the paper (section 3.2, Algorithm 1).

A local response *requests help* when it contains the trigger. Anything the local model wrote
after the trigger is discarded; the cloud completion takes the trigger's place.
"""

from __future__ import annotations

HELP_TRIGGER = "I need external assistance."


def requests_help(text: str) -> bool:
    """True when the local response contains the help trigger (anywhere)."""
    return HELP_TRIGGER in text


def split_at_trigger(text: str) -> tuple[str, bool]:
    """Return (local part before the first trigger, whether the trigger occurred).

    Without a trigger the whole text is the local part.
    """
    idx = text.find(HELP_TRIGGER)
    if idx < 0:
        return text, False
    return text[:idx], True


def compose(local: str, cloud: str) -> str:
    """The paper's operator C(y_local, y_cloud).

    The first trigger in `local` and everything after it are replaced by `cloud`. A local response
    without a trigger is returned unchanged (it did not ask for help, so there is nothing to fill).
    """
    prefix, asked = split_at_trigger(local)
    if not asked:
        return local
    return prefix + cloud
