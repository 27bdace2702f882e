"""Examples -> chat messages (paper F.1 via collab.prompts) -> prompt token ids (model's template)."""

from __future__ import annotations

from collab.prompts import build_messages
from collab.tasks.base import Example


def messages(ex: Example) -> list[dict[str, str]]:
    return build_messages(ex.kind, ex.question, ex.choices)


def prompt_ids(tokenizer, ex: Example) -> list[int]:
    """The chat template with the generation prompt appended (the response starts right after)."""
    ids = tokenizer.apply_chat_template(messages(ex), add_generation_prompt=True, tokenize=True)
    return list(ids["input_ids"] if hasattr(ids, "keys") else ids)  # BatchEncoding in transformers 5
