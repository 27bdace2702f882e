"""Fakes for unit tests of the agent's logic (integration tests use the real model and gateway)."""

from __future__ import annotations

import threading

from collab.cloud import CloudRefused, CloudReply, CloudUnavailable, Telemetry
from collab.protocol import HELP_TRIGGER
from llama_runtime.generation import ContextOverflow, Generation

LOCAL_TEXT = "<think>\nStep 1: 2 + 2 = 4.\n</think>\n<answer>Final answer: \\boxed{4}</answer>"
HELP_TEXT = "<think>\nStep 1: This is hard.\n" + HELP_TRIGGER
CLOUD_TEXT = "Step 2: The cloud solves it.\n</think>\n<answer>Final answer: \\boxed{7}</answer>"
GUESS_TEXT = "<think>\nStep 1: My best local guess.\n</think>\n<answer>Final answer: \\boxed{5}</answer>"


class FakeModel:
    """Answers locally, or asks for help when the question contains 'HARD'.

    `gate` (a threading.Event), when set on the instance, holds every generation until released.
    """

    n_ctx = 2048

    def __init__(self):
        self.adapter_path = None
        self.calls: list[tuple[str, str | None]] = []  # (question, adapter in force)
        self.gate: threading.Event | None = None
        self.entered = threading.Event()  # set once a generation has started
        self.biases: list[float] = []  # help_bias of each generate_knob call

    def generate(self, messages, *, max_tokens, temperature=0.0, seed=None) -> Generation:
        question = messages[-1]["content"]
        if "OVERFLOW" in question:
            raise ContextOverflow("the prompt is 9999 tokens: more than the context window")
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        self.calls.append((question, self.adapter_path))
        if "HARD" in question:
            return Generation(HELP_TEXT, True, 100, 12, "help")
        return Generation(LOCAL_TEXT, False, 100, 20, "stop")

    def generate_knob(self, messages, *, max_tokens, help_bias, temperature=0.0, seed=None):
        """The help knob: ask score +1 for 'HARD' questions, -1 otherwise; ask iff score + bias > 0."""
        question = messages[-1]["content"]
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        self.calls.append((question, self.adapter_path))
        self.biases.append(help_bias)
        score = 1.0 if "HARD" in question else -1.0
        if score + help_bias > 0:
            return Generation(HELP_TEXT, True, 100, 12, "help"), score
        return Generation(GUESS_TEXT if "HARD" in question else LOCAL_TEXT, False, 100, 20, "stop"), score

    def stream(self, messages, *, max_tokens, temperature=0.0, seed=None):
        """`generate`'s text in 4-character pieces, as LocalModel.stream yields tokens."""
        gen = self.generate(messages, max_tokens=max_tokens, temperature=temperature, seed=seed)

        def pieces():
            for i in range(0, len(gen.text), 4):
                yield gen.text[i:i + 4]
            return gen

        return pieces()

    def stream_knob(self, messages, *, max_tokens, help_bias, temperature=0.0, seed=None):
        """`generate_knob`'s text in 4-character pieces; returns (generation, score)."""
        gen, score = self.generate_knob(messages, max_tokens=max_tokens, help_bias=help_bias,
                                        temperature=temperature, seed=seed)

        def pieces():
            for i in range(0, len(gen.text), 4):
                yield gen.text[i:i + 4]
            return gen, score

        return pieces()

    def set_adapter(self, path):
        self.adapter_path = path


def telemetry(task: str, ratio: float = 0.25, tau: float = 0.3) -> Telemetry:
    return Telemetry(task=task, tau=tau, mode="enforce", responses=4, help_requests=1,
                     window_ratio=ratio, lifetime_ratio=ratio, credit=1.0)


class FakeCloud:
    """A CloudClient whose behaviour a test switches: 'ok', 'refuse', 'down'."""

    def __init__(self, mode: str = "ok"):
        self.mode = mode
        self.assist_keys: list[str] = []
        self.assists: list[tuple[int, int, str]] = []  # (group_help, group_size, report_key)
        self.reports: list[tuple[str, int, int, str | None]] = []
        self.offline: list[int] = []  # offline_help of each report

    def assist(self, example, messages, *, idempotency_key, group_help=1, group_size=1, report_key=""):
        self.assist_keys.append(idempotency_key)
        self.assists.append((group_help, group_size, report_key))
        if self.mode == "refuse":
            raise CloudRefused("no credit", telemetry(example.task, 0.5))
        if self.mode == "down":
            raise CloudUnavailable("gateway down")
        return CloudReply(CLOUD_TEXT, 50, 15, telemetry(example.task))

    def assist_stream(self, example, messages, *, idempotency_key, group_help=1, group_size=1, report_key=""):
        """CLOUD_TEXT in 5-character deltas, then the reply; 'break' fails after the first delta."""
        if self.mode == "break":
            self.assist_keys.append(idempotency_key)
            self.assists.append((group_help, group_size, report_key))
            yield CLOUD_TEXT[:5]
            raise CloudUnavailable("stream broke")
        reply = self.assist(example, messages, idempotency_key=idempotency_key, group_help=group_help,
                            group_size=group_size, report_key=report_key)
        for i in range(0, len(reply.completion), 5):
            yield reply.completion[i:i + 5]
        yield reply

    def report_usage(self, task, responses, help_requests, *, idempotency_key=None, offline_help=0):
        if self.mode == "down":
            raise CloudUnavailable("gateway down")
        self.reports.append((task, responses, help_requests, idempotency_key))
        self.offline.append(offline_help)
        return telemetry(task)

    def budget(self, task):
        return telemetry(task)
