"""Our tasks as verl's RLHF parquet (`data.train_files`): one row per Example.

verl's RLHFDataset reads `prompt` (chat messages; paper F.1 via collab.prompts), `data_source`
(reward_fn_key) and passes `reward_model` / `extra_info` through to the reward manager, which
rebuilds the Example from `extra_info` (`example_id`, `task`). Usage:

    python -m integrations.verl.data --task math --split train --n 4096 --out data/math_train.parquet
"""

from __future__ import annotations

import argparse

from collab.tasks import get_task
from collab.tasks.base import Example
from trainer.prompting import messages


def example_row(ex: Example) -> dict:
    return {"data_source": f"dagrpo/{ex.task}", "prompt": messages(ex), "ability": ex.kind,
            "reward_model": {"style": "rule", "ground_truth": ex.answer},
            "extra_info": {"example_id": ex.id, "task": ex.task}}


def write_parquet(examples: list[Example], path: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([example_row(ex) for ex in examples]), path)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", required=True)
    p.add_argument("--split", default="train", choices=("train", "val", "test"))
    p.add_argument("--n", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    write_parquet(get_task(a.task).examples(a.split, n=a.n, seed=a.seed), a.out)


if __name__ == "__main__":
    main()
