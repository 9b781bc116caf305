"""The model backends: one table (BACKENDS), the flags they share, and --model -> the chosen backend's settings.

A backend is one module with ``add_arguments(parser)`` (its own flag group), ``settings_from_args(args, name,
decoding, output)`` (its frozen settings, validated: ConfigError names the flag) and ``make_handler(settings)`` (the
RunInference ModelHandler). It may also have ``check_unused(args)``, run when another backend is chosen. Adding
a backend means writing its module and one line in BACKENDS.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
from typing import Any

from transforms.config import ConfigError, at_least

__all__ = ["BACKENDS", "Backend", "Decoding", "ModelSettings", "add_arguments", "settings_from_args", "make_handler"]


@dataclasses.dataclass(frozen=True)
class Backend:
    """One row of the table: the --model prefix, the module, and how --help and errors show it."""

    name: str
    module: str
    usage: str  # as listed in the --model error
    example: str = ""  # a model name, for "names no model" (empty: the backend takes no model name)


BACKENDS = (
    Backend("embedded", "transforms.models.llama_cpp", "embedded"),
    Backend("gemini", "transforms.models.gemini", "gemini:<model> (e.g. gemini:gemini-2.5-flash)", "gemini-2.5-flash"),
    Backend(
        "openai",
        "transforms.models.openai_compat",
        "openai:<model> (a model the server at --api-base knows)",
        "my-model",
    ),
)


@dataclasses.dataclass(frozen=True)
class Decoding:
    """Settings every backend takes (the source of their flags' defaults).

    Attributes:
        max_tokens: Upper bound of completion tokens per reply; each request has its own lower cap
            (PromptRequest.max_tokens, sized by transforms/budget.py).
        temperature: Sampling temperature (the recipe uses 1.0).
        top_p: Nucleus sampling threshold.
        batch_size: Most prompts RunInference hands the handler at once; None: the backend's default.
    """

    max_tokens: int = 8192
    temperature: float = 1.0
    top_p: float = 1.0
    batch_size: int | None = None

    def batch_or(self, default: int) -> int:
        """The batch size: --batch-size when given, else the backend's ``default``."""
        return self.batch_size or default


@dataclasses.dataclass(frozen=True)
class ModelSettings:
    """The chosen backend (a BACKENDS name), the --model value, and that backend's frozen settings."""

    backend: str
    spec: str
    settings: Any

    def handler(self):
        """A new RunInference ModelHandler for these settings (the model is loaded on the worker)."""
        return _module(self.backend).make_handler(self.settings)


def _module(name: str):
    return importlib.import_module(next(b.module for b in BACKENDS if b.name == name))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The model flag group (--model and the decoding flags), then each backend's own group."""
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        default="embedded",
        help="Model backend: embedded (default: SmolLM2-135M-Instruct in-process via llama-cpp-python), "
        "gemini:<model> (Vertex AI) or openai:<model> (an OpenAI-compatible server at --api-base); docs/backends.md.",
    )
    group.add_argument(
        "--max-tokens",
        type=int,
        default=Decoding.max_tokens,
        help="Upper bound of completion tokens per reply; each request is capped at what its prompt asks for "
        "(lengths, fields, script), the embedded model also by --n-ctx (default: %(default)s).",
    )
    group.add_argument(
        "--temperature", type=float, default=Decoding.temperature, help="Sampling temperature (default: %(default)s)."
    )
    group.add_argument(
        "--top-p", type=float, default=Decoding.top_p, help="Nucleus sampling threshold (default: %(default)s)."
    )
    group.add_argument(
        "--batch-size",
        type=int,
        default=Decoding.batch_size,
        help="Most prompts per RunInference batch (default: 4 for embedded, 4 x --max-concurrent-requests for remote).",
    )
    for backend in BACKENDS:
        _module(backend.name).add_arguments(parser)


def _decoding(args: argparse.Namespace) -> Decoding:
    if args.batch_size is not None:
        at_least("--batch-size", args.batch_size)
    at_least("--max-tokens", args.max_tokens, 16)
    if not 0.0 <= args.temperature <= 2.0:
        raise ConfigError(f"--temperature must be between 0 and 2, got {args.temperature}")
    if not 0.0 < args.top_p <= 1.0:
        raise ConfigError(f"--top-p must be in (0, 1], got {args.top_p}")
    return Decoding(args.max_tokens, args.temperature, args.top_p, args.batch_size)


def settings_from_args(args: argparse.Namespace, output: str) -> ModelSettings:
    """The backend --model names, with its validated settings; ConfigError names the flag.

    Args:
        args: The parsed flags (``args.cloud``: Beam's GoogleCloudOptions).
        output: The run's output directory (a backend that journals its own jobs keeps them there).
    """
    decoding = _decoding(args)
    prefix, colon, name = args.model.partition(":")
    backend = next((b for b in BACKENDS if b.name == prefix and bool(colon) == bool(b.example)), None)
    if backend is None or (not colon and args.model != backend.name):
        raise ConfigError(f"--model: unknown backend {args.model!r}; allowed: " + ", ".join(b.usage for b in BACKENDS))
    if backend.example and not name.strip():
        raise ConfigError(f"--model {args.model!r} names no model; e.g. {backend.name}:{backend.example}")
    for other in BACKENDS:
        check = getattr(_module(other.name), "check_unused", None)
        if other is not backend and check is not None:
            check(args)
    settings = _module(backend.name).settings_from_args(args, name.strip(), decoding, output)
    return ModelSettings(backend.name, args.model, settings)


def make_handler(config):
    """The RunInference ModelHandler of a GenerationConfig (its ``model`` settings)."""
    return config.model.handler()
