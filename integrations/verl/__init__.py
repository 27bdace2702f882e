"""DA-GRPO on verl 0.9.1 (docs/verl.md, docs/scale.md): the whole rollout batch scored with r - lambda*c.

  step.py            the per-step logic over plain data (no verl, no torch): groups by uid, one
                     cloud call per group that asked, eq. 13/14 scores, usage report, dual update
  config.py          the batch reward's typed settings (the `dagrpo` section of the verl config)
  state.py           lambda controller + run id per step on disk, restored at verl's resumed step
  driver.py          `DualRewardLoop`: lambda, run id and step count across verl steps
  reward_manager.py  `DagrpoBatchReward`: writes `rm_scores` and cuts `response_mask` of a verl batch
  agent_loop.py      the classes verl loads by name (rollout manager, per-sample zero reward)
  data.py            our tasks as verl's RLHF parquet

Only agent_loop.py imports verl, and only verl imports agent_loop.py: importing the rest of this
package needs neither verl nor torch.
"""
