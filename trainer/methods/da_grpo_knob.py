"""The paper's DA-GRPO with the help knob in the training loop (`train.rollout_knob`, trainer/knob_loop.py).

The advantages and lambda are the paper's (trainer/methods/da_grpo.py); `train.method =
"da_grpo_knob"` sets rollout_knob = true, knob_mode "step" and the llamacpp engine (config.KNOBBED):
rollouts sample from the LoRA model plus a help bias solved on each step's own paths (expected
ratio tau), evaluations with the bias calibrated per task at the phase end.
"""

from trainer.methods.da_grpo import make_method

__all__ = ["make_method"]
