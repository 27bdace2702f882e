"""The paper's baselines as pluggable advantage rules for the trainer (`train.method = NAME`).

Each module exposes `make_method(cfg: TrainConfig) -> Method` (see trainer/method.py). Methods that
need the step's context (its task, tau, prompts and rollouts) also define
`begin_step(ctx, *, task, tau, prompts, rollouts)`, which the driver calls before `advantages`.
Method settings come from `train.method_args` (a table; each module documents its keys).

  edge_only     GRPO, no cloud: the help trigger earns nothing               (edge_only.py)
  naive_router  edge_only's training; offloads a random tau share at evaluation (routing.py)
  router        edge_only's training; a trained failure classifier offloads at evaluation (trainer/router.py)
  grpo_fixed    fixed hierarchical reward, GRPO normalised advantages        (grpo_fixed.py)
  gvpo          fixed hierarchical reward, GVPO weights                       (gvpo.py)
  gapg          fixed hierarchical reward, GAPG estimator + budget filter     (gapg.py)
  da_grpo       built into trainer/method.py
  cloud_only    no training: every query answered by the cloud (evaluation only)
"""

METHODS = ("cloud_only", "edge_only", "naive_router", "router", "grpo_fixed", "gvpo", "gapg", "da_grpo")
EDGE_FAMILY = ("edge_only", "naive_router", "router")  # one trained model, three evaluation rules
