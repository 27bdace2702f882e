"""The help knob on the device: per task, a bias controller that holds the gateway's tau.

Each task has a `collab.help_knob.BiasController`: the bias of the next answer is the calibration
quantile of the ask scores of the device's recent answers at tau_eff = tau + integral feedback
from the gateway's window ratio. The tau in force and the ratio come from every telemetry the
gateway returns (Assist replies, usage reports), so a tau changed with `dagrpo gateway set-tau`
takes effect at the next answer. A calibration file written by `dagrpo calibrate`
(RUN_DIR/help_bias.json) seeds each task's score window with its validation scores, so the first
answers already meet tau; without one, the window fills from served answers (bias 0 until then:
ask iff the model gives the whole trigger a probability above 1/2).

An answer that asked for help records the largest score up to its asking position, a lower bound
of its score on the never-ask path; the bias it yields errs toward asking less.

The model thread reads a task's bias when a decode starts while the event loop feeds scores and
telemetry in: one lock keeps each read and update whole.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from collab.cloud import Telemetry
from collab.help_knob import BiasController

log = logging.getLogger("edge_agent.knob")


class HelpKnobs:
    def __init__(self, *, default_tau: float, gain: float, window: int, calibration: dict | None = None):
        self.default_tau, self.gain, self.window = default_tau, gain, window
        self.calibration = calibration or {}
        self._tasks: dict[str, BiasController] = {}
        self._lock = threading.RLock()

    @classmethod
    def from_settings(cls, settings, adapter_source: str | None) -> "HelpKnobs":
        return cls(default_tau=settings.knob_default_tau, gain=settings.knob_gain, window=settings.knob_window,
                   calibration=load_calibration(settings.help_bias_file, adapter_source))

    def controller(self, task: str) -> BiasController:
        with self._lock:
            return self._controller(task)

    def _controller(self, task: str) -> BiasController:
        if task not in self._tasks:
            c = BiasController(tau=self.default_tau, gain=self.gain, window=self.window)
            for score in self.calibration.get(task, {}).get("val_scores", [])[-self.window:]:
                c.observe_score(score)
            self._tasks[task] = c
        return self._tasks[task]

    def bias(self, task: str, cap: float | None = None) -> float:
        with self._lock:
            return self._controller(task).bias(default=0.0, cap=cap)

    def observe_score(self, task: str, score: float) -> None:
        with self._lock:
            self._controller(task).observe_score(score)

    def on_telemetry(self, task: str, t: Telemetry) -> None:
        with self._lock:
            c = self._controller(task)
            c.set_tau(t.tau)
            c.observe_ratio(t.window_ratio)

    def snapshot(self) -> dict[str, dict]:
        with self._lock:
            return {task: {"tau": c.tau, "tau_eff": c.tau_eff, "bias": c.bias(), "scores_seen": len(c.scores),
                           "integral": c.integral} for task, c in self._tasks.items()}


def load_calibration(path: str, adapter_source: str | None) -> dict:
    """`path`, else RUN_DIR/help_bias.json when the adapter was given as a run dir; {} if neither."""
    candidates = [Path(path)] if path else []
    if not path and adapter_source and Path(adapter_source).is_dir():
        candidates.append(Path(adapter_source) / "help_bias.json")
    for c in candidates:
        if c.is_file():
            log.info("help knob: calibration from %s", c)
            return json.loads(c.read_text())
        if path:
            raise FileNotFoundError(f"help bias file {path!r} does not exist")
    return {}
