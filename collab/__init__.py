"""The collaboration protocol shared by the trainer, the edge agent and the gateway.

Pure Python: nothing here imports torch, llama_cpp, grpc or redis at module level.
"""

from collab.protocol import HELP_TRIGGER, compose, requests_help, split_at_trigger
from collab.rewards import ALPHA_A, ALPHA_C, ALPHA_F, cost, reward

__all__ = [
    "HELP_TRIGGER",
    "requests_help",
    "split_at_trigger",
    "compose",
    "reward",
    "cost",
    "ALPHA_A",
    "ALPHA_F",
    "ALPHA_C",
]
