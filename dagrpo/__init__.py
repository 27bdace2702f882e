"""dagrpo: budget-aware collaboration between on-device language models and cloud LLMs."""

__version__ = "0.1.0"
