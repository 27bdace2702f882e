"""A simulator of the collaboration game (`dagrpo simulate`): the dual loop at any scale, in seconds.

Pure numpy, no torch. It runs the real trainer's math -- `trainer.method.make_method` (the dual
advantages and every cost baseline), `trainer.dual.make_controller` (every lambda controller),
the eq. 8 estimator with its G/(G-1) -- on a policy that is a softmax over {answer locally, ask}
per difficulty class (docs/simulator.md).

  game.py     the game: sampling groups, rewards/costs (eq. 13/14), the GRPO gradient, best responses
  optim.py    SGD and Adam (torch's AdamW arithmetic) on the logits
  config.py   SimConfig: [train] is the trainer's own TrainConfig, [sim] the game
  run.py      the driver: one simulated run -> metrics.jsonl, summary.json, the trainer's plots
  studies.py  the studies of issue 19 -> JSON, Markdown and PNG under an output directory
  cli.py      `dagrpo simulate` (argparse only)
"""
