"""DA-GRPO with the budget-tracking options on: cost baseline tau, PID lambda, skip all-zero steps.

The defaults of `train.method = "da_grpo_tracked"` are set in trainer/config.py (`TRACKED`).
"""

from trainer.methods.da_grpo import make_method

__all__ = ["make_method"]
