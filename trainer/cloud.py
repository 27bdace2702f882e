"""Cloud clients for the trainer: the in-process reference backend, or the gateway over gRPC.

`InProcessCloud` answers built-in examples from their known solution (collab.reference), right
with probability `accuracy`. The draw is a pure function of (seed, idempotency key), so a resumed
run sees exactly the answers an uninterrupted run would. It has no meter: `report_usage` counts
usage locally and returns None, which tells the trainer to use its own measured ratio.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

from collab.cloud import CloudClient, CloudReply, Telemetry
from collab.reference import reference_completion
from collab.tasks.base import Example
from dagrpo.errors import UserError
from trainer.config import CloudConfig
from trainer.hashdraw import hash_uniform

KEY_ENV = "DAGRPO_GATEWAY_KEY"


class InProcessCloud:
    def __init__(self, accuracy: float = 0.97, seed: int = 0):
        if not 0.0 <= accuracy <= 1.0:
            raise ValueError(f"accuracy must lie in [0, 1], got {accuracy}")
        self.accuracy = accuracy
        self.seed = seed
        self.queries = 0
        self.usage: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # task -> [responses, help]

    def _draw(self, key: str) -> float:
        """A uniform number in [0, 1) fixed by (seed, key)."""
        return hash_uniform(f"{self.seed}:{key}")

    def assist(
        self, example: Example, messages: list[dict[str, str]], *, idempotency_key: str,
        group_help: int = 1, group_size: int = 1, report_key: str = "",
    ) -> CloudReply:
        self.queries += 1
        text = reference_completion(example, correct=self._draw(idempotency_key) < self.accuracy)
        return CloudReply(completion=text, prompt_tokens=0, completion_tokens=len(text.split()))

    def report_usage(self, task: str, responses: int, help_requests: int, *,
                     idempotency_key: str | None = None, offline_help: int = 0) -> Telemetry | None:
        self.usage[task][0] += responses
        self.usage[task][1] += help_requests
        return None

    def budget(self, task: str) -> Telemetry | None:
        return None


def make_cloud(cfg: CloudConfig, seed: int, run_id: str = "") -> CloudClient:
    """The configured client; the gateway client (grpc) is imported only when selected. The
    gateway's idempotency keys (Assist and ReportUsage) carry `run_id` (unique per run, kept
    across resume, so a step run again after a crash is counted once); the in-process cloud's
    draws do not, so two runs with one seed see the same cloud answers."""
    if cfg.backend == "reference":
        return InProcessCloud(accuracy=cfg.accuracy, seed=seed)
    from collab.channel import ClientTLS
    from collab.gateway_client import GatewayCloud

    tls = ClientTLS.from_options(cfg.tls, cfg.tls_ca, cfg.tls_cert, cfg.tls_key)
    try:
        return GatewayCloud(cfg.address, gateway_key(cfg), key_prefix=f"{run_id}/" if run_id else "",
                            tls=tls, insecure=cfg.insecure)
    except ValueError as exc:  # plaintext to a remote gateway (collab.channel.InsecureChannel)
        raise UserError(f"cloud.address: {exc} (cloud.insecure)") from None


def gateway_key(cfg: CloudConfig) -> str:
    """The device key: `cloud.api_key`, else the file `cloud.api_key_file`, else env
    DAGRPO_GATEWAY_KEY. Only the file's path is in RUN_DIR/config.toml, so a resumed run
    finds the key again through the file or the environment."""
    key = cfg.api_key.get_secret_value()
    if not key and cfg.api_key_file:
        path = Path(cfg.api_key_file)
        if not path.is_file():
            raise UserError(f"cloud.api_key_file: file not found: {path}")
        key = path.read_text().strip()
    key = key or os.environ.get(KEY_ENV, "")
    if not key:
        raise UserError(f"cloud.backend = 'gateway' needs a device key: cloud.api_key_file or env {KEY_ENV}")
    return key
