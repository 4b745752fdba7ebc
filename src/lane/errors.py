"""The error hierarchy of lane.

    LaneError
    ├── UsageError                 the person's files or call are wrong: says where and how to fix it
    │   ├── ProjectInvalid         project files have problems; carries every Problem at once
    │   ├── RunNotFound            no run with that id in the store
    │   └── DecisionError          an approve/reject that cannot be taken
    ├── RunError                   a failure during a run; carries the run id (what was saved stays saved)
    │   ├── RunBusy                another live process is executing the run
    │   ├── ModelError             a model could not answer
    │   │   ├── ModelUnavailable   the provider is not available in this installation
    │   │   ├── ScriptExhausted    a scripted model ran out of turns
    │   │   └── ModelCallFailed    a provider's server did not answer well; the run pauses, never fails
    │   │       ├── ModelUnreachable       connection refused or reset          (retried)
    │   │       ├── ModelTimedOut          no answer within the timeout         (retried)
    │   │       ├── ModelRateLimited       429; Retry-After is honoured         (retried)
    │   │       ├── ModelServerFailed      5xx, unavailable, overloaded         (retried)
    │   │       ├── ModelReplyMalformed    an answer that is not the protocol   (retried)
    │   │       ├── ModelAuthFailed        401/403, or no API key set           (not retried)
    │   │       └── ModelRequestRejected   400/404/422, quota, context window   (not retried)
    │   └── ToolError              a tool could not be loaded or run
    ├── StoreUnavailable           the store's database cannot be reached; what was committed stays, nothing more is written
    └── ControlSignal              not failures: the engine's own flow
        ├── PauseRun               the run waits for a person
        └── StopRun                a budget or the repeat detector stopped the run

Exceptions are data: they carry what happened and never log or print.
"""

from __future__ import annotations

from dataclasses import dataclass


class LaneError(Exception):
    """Base of every error lane raises."""


class UsageError(LaneError):
    """The person's files or call are wrong."""


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong in a project file, at a 1-based line and column."""

    path: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.message}"

    def to_json(self) -> dict[str, object]:
        return {"path": self.path, "line": self.line, "column": self.column, "message": self.message}


class ProjectInvalid(UsageError):
    """The project's files have problems; nothing was run."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        count = len(self.problems)
        lines = "\n".join(str(p) for p in self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in the project:\n{lines}")


class RunNotFound(UsageError):
    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run {run_id!r} in this project's store; `lane runs` lists them")


class DecisionError(UsageError):
    """An approval or rejection that cannot be taken; nothing was recorded."""


class RunError(LaneError):
    """A failure during a run. Everything journaled before it stays saved."""

    def __init__(self, message: str, *, run_id: str | None = None) -> None:
        self.run_id = run_id
        super().__init__(message)


class RunBusy(RunError):
    """Another live process is executing this run."""


class StoreUnavailable(LaneError):
    """The store's database server cannot be reached (stopped, restarting, the network down).

    Everything committed before stays; a run that needed to write stops where it was and
    `lane resume` carries it on once the database is back."""


class ModelError(RunError):
    """A model could not answer."""


class ModelUnavailable(ModelError):
    """The model's provider is not available in this installation."""


class ScriptExhausted(ModelError):
    """A scripted model was asked for more turns than its file holds."""


class ModelCallFailed(ModelError):
    """A provider's server failed to answer well. Retryable ones are retried per the retry policy; then the run pauses."""

    retryable = True
    kind = "failed"

    def __init__(self, message: str, *, retry_after: float | None = None, status: int | None = None) -> None:
        self.retry_after = retry_after
        self.status = status
        super().__init__(message)


class ModelUnreachable(ModelCallFailed):
    kind = "unreachable"


class ModelTimedOut(ModelCallFailed):
    kind = "timeout"


class ModelRateLimited(ModelCallFailed):
    kind = "rate_limited"


class ModelServerFailed(ModelCallFailed):
    kind = "server_error"


class ModelReplyMalformed(ModelCallFailed):
    kind = "malformed"


class ModelAuthFailed(ModelCallFailed):
    retryable = False
    kind = "auth"


class ModelRequestRejected(ModelCallFailed):
    retryable = False
    kind = "rejected"


class ToolError(RunError):
    """A tool could not be loaded or run."""


class ControlSignal(Exception):
    """The engine's own flow: not a failure."""


class PauseRun(ControlSignal):
    """The run waits for a person."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class StopRun(ControlSignal):
    """A budget or the repeat detector stopped the run: which limit (`key`) and where (`scope`: run or a step id)."""

    def __init__(self, reason: str, *, key: str = "", scope: str = "run") -> None:
        self.reason = reason
        self.key = key
        self.scope = scope
        super().__init__(reason)
