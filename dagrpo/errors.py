"""Errors that the CLI turns into a one-line message and a non-zero exit (never a traceback)."""


class UserError(Exception):
    """Bad input from a person: a missing file, an unknown task, an invalid config value."""
