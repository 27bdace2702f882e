"""The cloud LLM alone (upper bound): nothing is trained; `dagrpo experiment` evaluates it."""

from dagrpo.errors import UserError


def make_method(cfg):
    raise UserError("train.method: 'cloud_only' trains nothing; run it through `dagrpo experiment`")
