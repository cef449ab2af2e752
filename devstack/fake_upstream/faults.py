"""Queued fault injection: each matching provider request consumes one fault, in FIFO order."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

FAULT_KINDS = ("status", "timeout", "drop", "cut", "stall", "stream_error", "malformed", "context_length")


class FaultSpecError(ValueError):
    """The fault description sent to ``POST /_fake/faults`` is invalid."""


@dataclass(frozen=True)
class FaultMatch:
    """Which requests a fault applies to; unset fields match anything."""

    path: str | None = None
    model: str | None = None

    def matches(self, path: str, model: str | None) -> bool:
        """Whether a request to ``path`` for ``model`` should receive the fault."""
        return (self.path is None or self.path == path) and (self.model is None or self.model == model)


@dataclass(frozen=True)
class Fault:
    """One injected failure.

    ``status``: answer ``status`` in the provider's error format (``retry_after`` adds the header).
    ``timeout``: wait ``seconds`` before answering anything.
    ``drop``: close the connection without answering (a provider's process or load balancer gone).
    ``cut``: send ``after_tokens`` output tokens then drop the connection.
    ``stall`` (streams): send ``after_tokens`` output tokens, go silent for ``seconds``, carry on.
    ``stream_error`` (streams): send ``after_tokens`` output tokens, then the provider's error
    event (``message`` in it), and end the stream there, as providers do when they fail mid-answer.
    ``malformed``: answer a body that is not valid JSON.
    ``context_length``: refuse the prompt as too long for the model, in the provider's words
    (``tokens``: the prompt size to report; by default one token over the model's window).
    """

    kind: str
    status: int = 500
    message: str | None = None
    retry_after: float | None = None
    seconds: float = 30.0
    after_tokens: int = 0
    tokens: int | None = None
    match: FaultMatch = FaultMatch()

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as shown in the request log."""
        return asdict(self)


def _number(spec: dict[str, Any], key: str, default: float, minimum: float) -> float:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise FaultSpecError(f"fault.{key} must be a number >= {minimum}")
    return float(value)


def _parse_match(spec: Any) -> FaultMatch:
    if spec is None:
        return FaultMatch()
    if not isinstance(spec, dict) or set(spec) - {"path", "model"}:
        raise FaultSpecError("match must be an object with optional 'path' and 'model'")
    return FaultMatch(path=spec.get("path"), model=spec.get("model"))


def parse_fault(spec: Any, default_match: FaultMatch) -> Fault:
    """Validate one fault description."""
    if not isinstance(spec, dict) or spec.get("kind") not in FAULT_KINDS:
        raise FaultSpecError(f"each fault needs a 'kind' among {', '.join(FAULT_KINDS)}")
    retry_after = spec.get("retry_after")
    if retry_after is not None:
        retry_after = _number(spec, "retry_after", 0, 0)
    tokens = int(_number(spec, "tokens", 1, 1)) if spec.get("tokens") is not None else None
    return Fault(
        kind=spec["kind"],
        status=int(_number(spec, "status", 500, 400)),
        message=str(spec["message"]) if spec.get("message") is not None else None,
        retry_after=retry_after,
        seconds=_number(spec, "seconds", 30.0, 0),
        after_tokens=int(_number(spec, "after_tokens", 0, 0)),
        tokens=tokens,
        match=_parse_match(spec["match"]) if "match" in spec else default_match,
    )


def parse_fault_request(payload: Any) -> list[Fault]:
    """Parse the body of ``POST /_fake/faults``: ``{"faults": [...], "match": {...}}``."""
    if not isinstance(payload, dict) or not isinstance(payload.get("faults"), list):
        raise FaultSpecError("body must be an object with a 'faults' list")
    default_match = _parse_match(payload.get("match"))
    return [parse_fault(spec, default_match) for spec in payload["faults"]]


class FaultQueue:
    """FIFO of pending faults."""

    def __init__(self) -> None:
        self._pending: list[Fault] = []

    def add(self, faults: list[Fault]) -> None:
        """Queue faults after the ones already pending."""
        self._pending.extend(faults)

    def clear(self) -> None:
        """Drop every pending fault."""
        self._pending.clear()

    def pending(self) -> list[Fault]:
        """Faults not consumed yet, oldest first."""
        return list(self._pending)

    def take(self, path: str, model: str | None) -> Fault | None:
        """Remove and return the oldest fault matching this request, if any."""
        for index, fault in enumerate(self._pending):
            if fault.match.matches(path, model):
                return self._pending.pop(index)
        return None
