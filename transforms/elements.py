"""Typed records passed between stages: elements, prompt requests, model completions, dead letters."""

from __future__ import annotations

import hashlib
import random
from typing import NamedTuple

__all__ = [
    "Element",
    "PromptRequest",
    "Completion",
    "DeadLetter",
    "stable_id",
    "derive_seed",
    "token_budget",
    "element_rng",
]

STAGE_BRAINSTORM = "brainstorm"
STAGE_GENERATE = "generate"


class Element(NamedTuple):
    """One unit of work: a brainstorm call or one example to generate.

    Attributes:
        element_id: Stable id, fixed before anything random happens.
        category: Task type name.
        stage: ``brainstorm`` or ``generate``.
        task: The brainstormed task description (None for symmetric types and brainstorm calls).
        attributes: Sampled or pinned attribute values as ``(name, value)`` pairs, in declaration
            order; language attributes hold XLM-R codes.
    """

    element_id: str
    category: str
    stage: str
    task: str | None = None
    attributes: tuple = ()


class PromptRequest(NamedTuple):
    """One prompt for the model. Exactly one Completion comes back for each."""

    element: Element
    prompt: str
    template: str
    template_sha256: str
    schema_json: str
    sampling_seed: int
    attempt: int = 0
    failures: tuple = ()  # reasons of earlier attempts, oldest first
    max_tokens: int = 0  # completion-token cap of this request (0: the backend's --max-tokens); never above it


class Completion(NamedTuple):
    """The model's answer to one PromptRequest.

    Attributes:
        text: Raw model text ('' on error).
        finish_reason: ``stop``, ``length`` or ``error``.
        error: Error message when the call itself failed.
        retryable: Whether a failed call may succeed if asked again (429, 5xx, timeouts).
    """

    text: str
    model: str
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    retryable: bool = False


class DeadLetter(NamedTuple):
    """An element that did not become a row, and why."""

    element_id: str
    category: str
    stage: str
    reason: str
    detail: str
    prompt: str
    raw_text: str
    model: str
    attempts: int
    failures: tuple = ()


def token_budget(request: PromptRequest, ceiling: int) -> int:
    """The completion-token cap of one call: the request's own budget, bounded by the backend's ``ceiling``."""
    return min(request.max_tokens, ceiling) if request.max_tokens > 0 else ceiling


def stable_id(*parts: object) -> str:
    """A short stable hash of ``parts`` (never Python's salted ``hash()``)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).hexdigest()
    return digest[:24]


def derive_seed(run_seed: int, element_id: str, purpose: str, attempt: int = 0) -> int:
    """A 31-bit seed derived from the run seed, the element id, a purpose and an attempt number."""
    digest = hashlib.sha256(f"{run_seed}\x1f{element_id}\x1f{purpose}\x1f{attempt}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def element_rng(run_seed: int, element_id: str, purpose: str = "attributes") -> random.Random:
    """A private RNG for one element, seeded from ``sha256(run_seed, element_id, purpose)``."""
    digest = hashlib.sha256(f"{run_seed}\x1f{element_id}\x1f{purpose}".encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))
