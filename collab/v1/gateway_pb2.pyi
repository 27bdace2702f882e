from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Mode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODE_UNSPECIFIED: _ClassVar[Mode]
    MODE_METER: _ClassVar[Mode]
    MODE_ENFORCE: _ClassVar[Mode]
MODE_UNSPECIFIED: Mode
MODE_METER: Mode
MODE_ENFORCE: Mode

class Telemetry(_message.Message):
    __slots__ = ("device", "task", "tau", "mode", "responses", "help_requests", "cloud_calls", "denials", "tokens", "window_ratio", "lifetime_ratio", "credit", "burst", "window_responses", "report_ratio", "reported_help_requests", "mismatches", "report_device_ratio", "report_tau", "flagged_reports", "excess_responses", "throttled")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    TAU_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    HELP_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    CLOUD_CALLS_FIELD_NUMBER: _ClassVar[int]
    DENIALS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_RATIO_FIELD_NUMBER: _ClassVar[int]
    LIFETIME_RATIO_FIELD_NUMBER: _ClassVar[int]
    CREDIT_FIELD_NUMBER: _ClassVar[int]
    BURST_FIELD_NUMBER: _ClassVar[int]
    WINDOW_RESPONSES_FIELD_NUMBER: _ClassVar[int]
    REPORT_RATIO_FIELD_NUMBER: _ClassVar[int]
    REPORTED_HELP_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    MISMATCHES_FIELD_NUMBER: _ClassVar[int]
    REPORT_DEVICE_RATIO_FIELD_NUMBER: _ClassVar[int]
    REPORT_TAU_FIELD_NUMBER: _ClassVar[int]
    FLAGGED_REPORTS_FIELD_NUMBER: _ClassVar[int]
    EXCESS_RESPONSES_FIELD_NUMBER: _ClassVar[int]
    THROTTLED_FIELD_NUMBER: _ClassVar[int]
    device: str
    task: str
    tau: float
    mode: Mode
    responses: int
    help_requests: int
    cloud_calls: int
    denials: int
    tokens: int
    window_ratio: float
    lifetime_ratio: float
    credit: float
    burst: float
    window_responses: int
    report_ratio: float
    reported_help_requests: int
    mismatches: int
    report_device_ratio: float
    report_tau: float
    flagged_reports: int
    excess_responses: int
    throttled: int
    def __init__(self, device: _Optional[str] = ..., task: _Optional[str] = ..., tau: _Optional[float] = ..., mode: _Optional[_Union[Mode, str]] = ..., responses: _Optional[int] = ..., help_requests: _Optional[int] = ..., cloud_calls: _Optional[int] = ..., denials: _Optional[int] = ..., tokens: _Optional[int] = ..., window_ratio: _Optional[float] = ..., lifetime_ratio: _Optional[float] = ..., credit: _Optional[float] = ..., burst: _Optional[float] = ..., window_responses: _Optional[int] = ..., report_ratio: _Optional[float] = ..., reported_help_requests: _Optional[int] = ..., mismatches: _Optional[int] = ..., report_device_ratio: _Optional[float] = ..., report_tau: _Optional[float] = ..., flagged_reports: _Optional[int] = ..., excess_responses: _Optional[int] = ..., throttled: _Optional[int] = ...) -> None: ...

class ChatMessage(_message.Message):
    __slots__ = ("role", "content")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: str
    def __init__(self, role: _Optional[str] = ..., content: _Optional[str] = ...) -> None: ...

class AssistRequest(_message.Message):
    __slots__ = ("task", "example_id", "messages", "idempotency_key", "group_help", "group_size", "device", "report_key")
    TASK_FIELD_NUMBER: _ClassVar[int]
    EXAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    GROUP_HELP_FIELD_NUMBER: _ClassVar[int]
    GROUP_SIZE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    REPORT_KEY_FIELD_NUMBER: _ClassVar[int]
    task: str
    example_id: str
    messages: _containers.RepeatedCompositeFieldContainer[ChatMessage]
    idempotency_key: str
    group_help: int
    group_size: int
    device: str
    report_key: str
    def __init__(self, task: _Optional[str] = ..., example_id: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[ChatMessage, _Mapping]]] = ..., idempotency_key: _Optional[str] = ..., group_help: _Optional[int] = ..., group_size: _Optional[int] = ..., device: _Optional[str] = ..., report_key: _Optional[str] = ...) -> None: ...

class AssistResponse(_message.Message):
    __slots__ = ("completion", "prompt_tokens", "completion_tokens", "telemetry", "backend", "replayed")
    COMPLETION_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TELEMETRY_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    completion: str
    prompt_tokens: int
    completion_tokens: int
    telemetry: Telemetry
    backend: str
    replayed: bool
    def __init__(self, completion: _Optional[str] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., telemetry: _Optional[_Union[Telemetry, _Mapping]] = ..., backend: _Optional[str] = ..., replayed: _Optional[bool] = ...) -> None: ...

class AssistChunk(_message.Message):
    __slots__ = ("delta", "done")
    DELTA_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    delta: str
    done: AssistResponse
    def __init__(self, delta: _Optional[str] = ..., done: _Optional[_Union[AssistResponse, _Mapping]] = ...) -> None: ...

class ReportUsageRequest(_message.Message):
    __slots__ = ("task", "responses", "help_requests", "idempotency_key", "device", "offline_help")
    TASK_FIELD_NUMBER: _ClassVar[int]
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    HELP_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    OFFLINE_HELP_FIELD_NUMBER: _ClassVar[int]
    task: str
    responses: int
    help_requests: int
    idempotency_key: str
    device: str
    offline_help: int
    def __init__(self, task: _Optional[str] = ..., responses: _Optional[int] = ..., help_requests: _Optional[int] = ..., idempotency_key: _Optional[str] = ..., device: _Optional[str] = ..., offline_help: _Optional[int] = ...) -> None: ...

class ReportUsageResponse(_message.Message):
    __slots__ = ("telemetry", "replayed")
    TELEMETRY_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    telemetry: Telemetry
    replayed: bool
    def __init__(self, telemetry: _Optional[_Union[Telemetry, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class GetBudgetRequest(_message.Message):
    __slots__ = ("task", "device")
    TASK_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    task: str
    device: str
    def __init__(self, task: _Optional[str] = ..., device: _Optional[str] = ...) -> None: ...

class GetBudgetResponse(_message.Message):
    __slots__ = ("telemetry",)
    TELEMETRY_FIELD_NUMBER: _ClassVar[int]
    telemetry: Telemetry
    def __init__(self, telemetry: _Optional[_Union[Telemetry, _Mapping]] = ...) -> None: ...

class TauStep(_message.Message):
    __slots__ = ("from_responses", "tau")
    FROM_RESPONSES_FIELD_NUMBER: _ClassVar[int]
    TAU_FIELD_NUMBER: _ClassVar[int]
    from_responses: int
    tau: float
    def __init__(self, from_responses: _Optional[int] = ..., tau: _Optional[float] = ...) -> None: ...

class TaskPolicy(_message.Message):
    __slots__ = ("task", "schedule", "mode", "burst", "window_responses")
    TASK_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    BURST_FIELD_NUMBER: _ClassVar[int]
    WINDOW_RESPONSES_FIELD_NUMBER: _ClassVar[int]
    task: str
    schedule: _containers.RepeatedCompositeFieldContainer[TauStep]
    mode: Mode
    burst: float
    window_responses: int
    def __init__(self, task: _Optional[str] = ..., schedule: _Optional[_Iterable[_Union[TauStep, _Mapping]]] = ..., mode: _Optional[_Union[Mode, str]] = ..., burst: _Optional[float] = ..., window_responses: _Optional[int] = ...) -> None: ...

class SetTauRequest(_message.Message):
    __slots__ = ("task", "schedule", "mode", "burst", "window_responses")
    TASK_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    BURST_FIELD_NUMBER: _ClassVar[int]
    WINDOW_RESPONSES_FIELD_NUMBER: _ClassVar[int]
    task: str
    schedule: _containers.RepeatedCompositeFieldContainer[TauStep]
    mode: Mode
    burst: float
    window_responses: int
    def __init__(self, task: _Optional[str] = ..., schedule: _Optional[_Iterable[_Union[TauStep, _Mapping]]] = ..., mode: _Optional[_Union[Mode, str]] = ..., burst: _Optional[float] = ..., window_responses: _Optional[int] = ...) -> None: ...

class SetTauResponse(_message.Message):
    __slots__ = ("policy",)
    POLICY_FIELD_NUMBER: _ClassVar[int]
    policy: TaskPolicy
    def __init__(self, policy: _Optional[_Union[TaskPolicy, _Mapping]] = ...) -> None: ...

class ListBudgetsRequest(_message.Message):
    __slots__ = ("device", "task")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    device: str
    task: str
    def __init__(self, device: _Optional[str] = ..., task: _Optional[str] = ...) -> None: ...

class ListBudgetsResponse(_message.Message):
    __slots__ = ("budgets", "policies")
    BUDGETS_FIELD_NUMBER: _ClassVar[int]
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    budgets: _containers.RepeatedCompositeFieldContainer[Telemetry]
    policies: _containers.RepeatedCompositeFieldContainer[TaskPolicy]
    def __init__(self, budgets: _Optional[_Iterable[_Union[Telemetry, _Mapping]]] = ..., policies: _Optional[_Iterable[_Union[TaskPolicy, _Mapping]]] = ...) -> None: ...

class ResetDeviceRequest(_message.Message):
    __slots__ = ("device", "task")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    device: str
    task: str
    def __init__(self, device: _Optional[str] = ..., task: _Optional[str] = ...) -> None: ...

class ResetDeviceResponse(_message.Message):
    __slots__ = ("reset",)
    RESET_FIELD_NUMBER: _ClassVar[int]
    reset: int
    def __init__(self, reset: _Optional[int] = ...) -> None: ...
