"""The paper's DA-GRPO with the help knob in the training loop (`train.rollout_knob`, trainer/knob_loop.py).

The advantages and lambda are the paper's (trainer/methods/da_grpo.py); `train.method =
"da_grpo_knob"` sets rollout_knob = true and the llamacpp engine (config.KNOBBED), so rollouts and
evaluations sample from the LoRA model plus a per-task help bias held at tau.
"""

from trainer.methods.da_grpo import make_method

__all__ = ["make_method"]
