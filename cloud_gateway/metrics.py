"""Prometheus metrics of the gateway (`gateway_*`), on a registry of its own per server.

Every metered call touches about six labelled series; prometheus_client's `labels()` validates
and locks on each lookup, so the metric classes here remember their children by label values
(a task or method name: a few dozen series per gateway).
"""

from __future__ import annotations

import prometheus_client as prom
from prometheus_client import CollectorRegistry

from cloud_gateway.store.base import Snapshot
from collab import budget as b


class _CachedLabels:
    """`labels(*values)` answered from a dict after the first lookup of those values."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._children_by_values: dict[tuple[str, ...], object] = {}

    def labels(self, *values: str):
        child = self._children_by_values.get(values)
        if child is None:
            child = self._children_by_values[values] = super().labels(*values)
        return child


class Counter(_CachedLabels, prom.Counter):
    pass


class Gauge(_CachedLabels, prom.Gauge):
    pass


class Histogram(_CachedLabels, prom.Histogram):
    pass


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.assists = Counter("gateway_assists_total", "Assist calls by outcome (allowed, refused, throttled, "
                               "replayed, error)", ["task", "outcome"], registry=r)
        self.responses = Counter("gateway_responses_total", "Responses reported", ["task"], registry=r)
        self.help_requests = Counter("gateway_help_requests_total", "Help requests of reported responses, as "
                                     "the gateway counted them (Assist traffic, collab.budget.report_help)",
                                     ["task"], registry=r)
        self.reported_help = Counter("gateway_reported_help_requests_total", "Help requests the devices "
                                     "reported", ["task"], registry=r)
        self.mismatches = Counter("gateway_usage_mismatch_total", "Usage reports whose device help count "
                                  "disagreed with the gateway's", ["task"], registry=r)
        self.flagged = Counter("gateway_flagged_reports_total", "Usage reports that claimed more responses than "
                               "the per-device claim limit allowed", ["task"], registry=r)
        self.excess = Counter("gateway_excess_responses_total", "Responses claimed beyond the claim limit (not "
                              "counted)", ["task"], registry=r)
        self.throttled_rpcs = Counter("gateway_throttled_rpcs_total", "RPCs refused by a per-device RPC rate or "
                                      "concurrency limit", ["method"], registry=r)
        self.denials = Counter("gateway_denials_total", "Assist calls refused for lack of credit", ["task"], registry=r)
        self.tokens = Counter("gateway_cloud_tokens_total", "Cloud tokens served", ["task", "kind"], registry=r)
        self.latency = Histogram("gateway_rpc_latency_seconds", "RPC latency", ["method"], registry=r,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.tau = Gauge("gateway_tau", "Current tau per task (of the last device seen)", ["task"], registry=r)
        self.ratio = Gauge("gateway_collab_ratio", "Window collaboration ratio of the last device that "
                           "reported (fleet ratio: rate(help_requests)/rate(responses))", ["task"], registry=r)

    def observe(self, s: Snapshot) -> None:
        self.tau.labels(s.task).set(s.tau_ppm / b.PPM)
        self.ratio.labels(s.task).set(b.window_ratio(s.counters))
