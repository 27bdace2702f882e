"""The gateway's domain logic: validate, meter atomically in the store, ask the cloud backend.

No gRPC here: the servicer (`service.py`) converts wire <-> these calls and maps the errors below
to status codes. Assist is two atomic store steps around the backend call:

1. decide+count (or replay the decision remembered under the idempotency key);
2. backend completion, remembered under the key together with its tokens (first writer wins),
so a retry is counted once and gets the same completion; a retry after a backend failure gets the
already-granted decision and a fresh backend attempt (the credit is not spent twice).
AssistStream is the same two steps with the backend's deltas passed on as they come; the
completion is remembered only once it is whole, so a stream broken half way (a backend failure, a
client gone) is, for the key, a backend failure.

Help is measured here, not taken from the device (collab.budget, DESIGN.md section 7): an Assist
serves `budget.assist_help(group_help, group_size)` help requests, refused or not, and adds them
to the report it names (`report_key`); a report's help is the gateway's count of them, and a
device count that disagrees is a mismatch (`gateway_usage_mismatch_total{task}`, a log line).
Responses, which only the device can count, are believed up to the claim limit
(`collab.budget.claim`); a report that claims more is flagged (`gateway_flagged_reports_total`,
a log line), and Assist grants have a rate cap of their own (`throttled`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from collab import budget as b
from cloud_gateway.auth import Principal
from cloud_gateway.backends.base import AssistInput, BackendUnavailable, CloudBackend
from cloud_gateway.metrics import GatewayMetrics
from cloud_gateway.store.base import NAME_RE, Completion, Snapshot, Store, UnknownTask, subject_digest

log = logging.getLogger("cloud_gateway")
MAX_KEY_CHARS = 128
MAX_COUNT = 10**9  # per report; keeps counters far from float precision in Lua
ROLES = ("system", "user", "assistant")


class InvalidArgument(Exception):
    pass


class PermissionDenied(Exception):
    pass


class Refused(Exception):
    """Enforce mode without credit, or (either mode) the device's cloud-call limit reached."""

    def __init__(self, snapshot: Snapshot):
        c = snapshot.counters
        if b.was_throttled(snapshot.allowed, snapshot.mode, c.credit_ppm):
            why = f"cloud-call limit reached for task {snapshot.task!r}: retry later"
        else:
            why = (f"help budget exhausted for task {snapshot.task!r}: credit {c.credit_ppm / b.PPM:.3f} < 1 "
                   f"(tau {snapshot.tau_ppm / b.PPM:g})")
        super().__init__(why)
        self.snapshot = snapshot


@dataclass
class Gateway:
    store: Store
    backend: CloudBackend
    metrics: GatewayMetrics
    max_prompt_chars: int = 32768
    max_messages: int = 64
    max_example_id_chars: int = 256
    max_completion_chars: int = 262144
    _tasks: frozenset[str] = frozenset()  # tasks with a policy; only grows, so a hit needs no store read

    # -- device RPCs ------------------------------------------------------------------------------
    async def assist(self, who: Principal, device: str, task: str, example_id: str,
                     messages: list[tuple[str, str]], key: str, group_help: int, group_size: int,
                     timeout_s: float, report_key: str = "") -> tuple[Snapshot, Completion]:
        request, s = await self._grant(who, device, task, example_id, messages, key, group_help,
                                       group_size, report_key)
        # A fresh decision has no completion yet; only a retry may find one remembered.
        done = await self.store.completion(request.device, key) if s.replayed else None
        if done is None:
            fresh = await self.backend.complete(request, timeout_s)
            self._check_completion(len(fresh.completion), request)
            done = await self.store.complete(request.device, task, key, fresh)
            if not done.replayed:
                self.metrics.tokens.labels(task, "prompt").inc(done.prompt_tokens)
                self.metrics.tokens.labels(task, "completion").inc(done.completion_tokens)
        self.metrics.assists.labels(task, "replayed" if s.replayed else "allowed").inc()
        self.metrics.observe(s)
        return s, done

    async def assist_stream(self, who: Principal, device: str, task: str, example_id: str,
                            messages: list[tuple[str, str]], key: str, group_help: int, group_size: int,
                            timeout_s: float, report_key: str = "") -> AsyncIterator[str | tuple[Snapshot, Completion]]:
        """Assist, streamed: text deltas, then (snapshot, the remembered completion).

        Raises Refused before anything is yielded; a replay yields the remembered completion whole."""
        request, s = await self._grant(who, device, task, example_id, messages, key, group_help,
                                       group_size, report_key)
        done = await self.store.completion(request.device, key) if s.replayed else None
        if done is None:
            fresh, chars = None, 0
            async for part in _backend_stream(self.backend, request, timeout_s):
                if isinstance(part, Completion):
                    fresh = part
                else:
                    chars += len(part)
                    self._check_completion(chars, request)
                    yield part
            done = await self.store.complete(request.device, task, key, fresh)
            if not done.replayed:
                self.metrics.tokens.labels(task, "prompt").inc(done.prompt_tokens)
                self.metrics.tokens.labels(task, "completion").inc(done.completion_tokens)
        else:
            yield done.completion
        self.metrics.assists.labels(task, "replayed" if s.replayed else "allowed").inc()
        self.metrics.observe(s)
        yield s, done

    async def _grant(self, who: Principal, device: str, task: str, example_id: str,
                     messages: list[tuple[str, str]], key: str, group_help: int, group_size: int,
                     report_key: str) -> tuple[AssistInput, Snapshot]:
        """Assist's checks and its metered decision (step 1); raises Refused when not allowed."""
        device = self._own_device(who, device)
        _check_task(task)
        _check_key(key)
        if report_key:
            _check_key(report_key)
        if len(example_id) > self.max_example_id_chars:
            raise InvalidArgument(f"example_id: at most {self.max_example_id_chars} characters, got {len(example_id)}")
        self._check_messages(messages)
        if not 0 <= group_help <= group_size <= MAX_COUNT:
            raise InvalidArgument(f"need 0 <= group_help <= group_size, got {group_help}, {group_size}")
        await self._known(task)
        request = AssistInput(device, task, example_id, tuple(messages), key)
        self.backend.validate(request)  # a request the backend cannot answer costs no credit
        s = await self.store.assist(device, task, key, subject=subject_digest(example_id),
                                    help_requests=b.assist_help(group_help, group_size), report_key=report_key)
        if not s.allowed:
            throttled = b.was_throttled(s.allowed, s.mode, s.counters.credit_ppm)
            self.metrics.assists.labels(task, "throttled" if throttled else "refused").inc()
            if not s.replayed and not throttled:
                self.metrics.denials.labels(task).inc()
            if not s.replayed and throttled and _power_of_two(s.counters.throttled):
                log.warning("cloud-call limit: device %s refused an Assist on %s (%d throttled so far)", device,
                            task, s.counters.throttled)
            raise Refused(s)
        return request, s

    async def report(self, who: Principal, device: str, task: str, responses: int, help_requests: int,
                     key: str, offline_help: int = 0) -> Snapshot:
        device = self._own_device(who, device)
        _check_task(task)
        _check_key(key)
        if not (0 <= responses <= MAX_COUNT and 0 <= help_requests <= MAX_COUNT and 0 <= offline_help <= MAX_COUNT):
            raise InvalidArgument(f"counts must lie in [0, {MAX_COUNT}], got responses={responses}, "
                                  f"help_requests={help_requests}, offline_help={offline_help}")
        if help_requests > responses:
            raise InvalidArgument(f"help_requests ({help_requests}) exceeds responses ({responses})")
        if offline_help > help_requests:
            raise InvalidArgument(f"offline_help ({offline_help}) exceeds help_requests ({help_requests})")
        s = await self.store.report(device, task, responses, help_requests, key, offline_help)
        believed, counted, reported, _ = s.report
        if not s.replayed:
            self.metrics.responses.labels(task).inc(believed)
            if believed < responses:
                self.metrics.flagged.labels(task).inc()
                self.metrics.excess.labels(task).inc(responses - believed)
            if believed < responses and _power_of_two(s.counters.flagged):  # a flood logs log2(n) lines
                log.warning("implausible claim: device %s reported %d responses on %s (report %s); %d believed "
                            "(claim limit), %d flagged reports so far", device, responses, task, key, believed,
                            s.counters.flagged)
            self.metrics.help_requests.labels(task).inc(counted)
            self.metrics.reported_help.labels(task).inc(reported)
            if counted != reported:
                self.metrics.mismatches.labels(task).inc()
                log.warning("usage mismatch: device %s reported %d help requests of %d responses on %s "
                            "(report %s); the gateway counted %d", device, reported, responses, task, key, counted)
        self.metrics.observe(s)
        return s

    async def get_budget(self, who: Principal, device: str, task: str) -> Snapshot:
        device = device if who.admin and device else self._own_device(who, device)
        _check_task(task)
        return await self.store.get(device, task)

    # -- admin RPCs -------------------------------------------------------------------------------
    async def set_tau(self, who: Principal, task: str, schedule: list[tuple[int, float]], mode: str,
                      burst: float, window: int) -> b.Policy:
        _need_admin(who)
        _check_task(task)
        if not schedule:
            raise InvalidArgument("schedule: give at least one step (from_responses 0, tau)")
        if any(not 0.0 <= t <= 1.0 for _, t in schedule):
            raise InvalidArgument(f"tau must lie in [0, 1], got {[t for _, t in schedule]}")
        if burst < 0 or window < 0:
            raise InvalidArgument("burst and window_responses must not be negative (0 keeps the current)")
        current = (await self.store.policies()).get(task)
        try:
            policy = b.Policy(
                tuple((int(s), b.to_ppm(t)) for s, t in schedule),
                mode or (current.mode if current else "meter"),
                b.to_ppm(burst) if burst else (current.burst_ppm if current else 4 * b.PPM),
                window or (current.window if current else 256))
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from None
        await self.store.set_policy(task, policy)
        self.metrics.tau.labels(task).set(b.tau_at(policy.schedule, 0) / b.PPM)
        return policy

    async def budgets(self, who: Principal, device: str, task: str) -> tuple[list[Snapshot], dict[str, b.Policy]]:
        _need_admin(who)
        return await self.store.budgets(device, task), await self.store.policies()

    async def reset(self, who: Principal, device: str, task: str) -> int:
        _need_admin(who)
        if not NAME_RE.match(device):
            raise InvalidArgument(f"device: {device!r} is not a device name")
        return await self.store.reset(device, task)

    # -- checks -----------------------------------------------------------------------------------
    def _own_device(self, who: Principal, device: str) -> str:
        if who.admin:
            raise PermissionDenied("the admin key is not a device key: use a device's own key")
        if device and device != who.name:
            raise PermissionDenied(f"device {who.name!r} may not use the budget of device {device!r}")
        return who.name

    async def _known(self, task: str) -> None:
        if task not in self._tasks:
            self._tasks = frozenset(await self.store.policies())
            if task not in self._tasks:
                raise UnknownTask(task)

    def _check_completion(self, chars: int, request: AssistInput) -> None:
        if chars > self.max_completion_chars:
            log.error("cloud model answered %s/%s with more than %d characters: stopped, not stored",
                      request.device, request.idempotency_key, self.max_completion_chars)
            raise BackendUnavailable(f"completion over max_completion_chars ({self.max_completion_chars})")

    def _check_messages(self, messages: list[tuple[str, str]]) -> None:
        if len(messages) > self.max_messages:
            raise InvalidArgument(f"messages: at most {self.max_messages}, got {len(messages)}")
        chars = sum(len(c) for _, c in messages)
        if not messages or chars == 0:
            raise InvalidArgument("empty prompt: send at least one message with content")
        if chars > self.max_prompt_chars:
            raise InvalidArgument(f"prompt too long: {chars} characters > {self.max_prompt_chars}")
        bad = {r for r, _ in messages} - set(ROLES)
        if bad:
            raise InvalidArgument(f"unknown message roles {sorted(bad)}; use {ROLES}")


async def _backend_stream(backend: CloudBackend, request: AssistInput,
                          timeout_s: float) -> AsyncIterator[str | Completion]:
    """The backend's stream; a backend that cannot stream answers in one delta."""
    if hasattr(backend, "stream"):
        async for part in backend.stream(request, timeout_s):
            yield part
        return
    done = await backend.complete(request, timeout_s)
    yield done.completion
    yield done


def _power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _need_admin(who: Principal) -> None:
    if not who.admin:
        raise PermissionDenied(f"admin RPCs need the admin key; {who.name!r} is a device")


def _check_task(task: str) -> None:
    if not NAME_RE.match(task):
        raise InvalidArgument(f"task: {task!r} is not a valid task name")


def _check_key(key: str) -> None:
    if not 1 <= len(key) <= MAX_KEY_CHARS:
        raise InvalidArgument(f"idempotency_key: needs 1..{MAX_KEY_CHARS} characters, got {len(key)}")
