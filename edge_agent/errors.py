"""Domain errors of the edge agent; `edge_agent.api` maps each to one HTTP status in one place."""


class InvalidQuestion(ValueError):
    """The request cannot be answered as asked (unknown task, choices that do not fit, ...)."""


class ContextOverflow(ValueError):
    """The prompt (plus the requested new tokens) does not fit the model's context window."""
