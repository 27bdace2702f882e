"""DA-GRPO on verl (docs/verl.md): a batch reward manager that returns r - lambda*c per response.

  step.py            the per-step logic over plain data (no verl, no torch): groups by uid, one
                     cloud call per group that asked, eq. 13/14 scores, usage report, dual update
  config.py          the reward manager's typed settings (verl's `reward_model.reward_kwargs`)
  state.py           lambda controller + run id per step on disk, restored at verl's resumed step
  reward_manager.py  the verl-facing class (`DagrpoRewardManager`); imports verl/torch lazily

Only reward_manager.py touches verl objects, and only inside its methods: importing this package
needs neither verl nor torch.
"""
