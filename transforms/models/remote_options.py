"""The flags the remote backends share (concurrency, retries, timeouts, --api-base) -> RemoteSettings."""

from __future__ import annotations

import argparse
import dataclasses
import urllib.parse
from typing import Any

from transforms.config import ConfigError, at_least
from transforms.models import Decoding
from transforms.models.remote import RemoteSettings

__all__ = ["RemoteBackend", "add_arguments", "settings_from_args"]

_GROUP = "remote models (gemini:<model>, openai:<model>)"
# Timeouts when --request-timeout is not given: Flex pay-as-you-go queues requests for up to 30 minutes.
_FLEX_TIMEOUT = 1800.0


@dataclasses.dataclass(frozen=True)
class RemoteBackend:
    """A remote backend's settings: the shared call settings and the service's own (GeminiSettings, ...)."""

    remote: RemoteSettings
    service: Any
    batch: Any = None  # batch prediction settings (gemini --vertex-batch), None for online calls


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The shared remote flag group, once per parser (every remote backend asks for it)."""
    if any(g.title == _GROUP for g in parser._action_groups):
        return
    group = parser.add_argument_group(_GROUP)
    group.add_argument(
        "--api-base",
        default=None,
        help="openai: the server's base URL, e.g. http://127.0.0.1:8000/v1 (required). "
        "gemini: an endpoint to use instead of Vertex AI's regional one.",
    )
    group.add_argument(
        "--max-concurrent-requests",
        type=int,
        default=RemoteSettings.max_concurrent_requests,
        help="Requests in flight at once per worker process (default: %(default)s).",
    )
    group.add_argument(
        "--requests-per-minute",
        type=float,
        default=RemoteSettings.requests_per_minute,
        help="Cap on requests started per minute per worker process (default: no cap).",
    )
    group.add_argument(
        "--max-request-retries",
        type=int,
        default=RemoteSettings.max_request_retries,
        help="Retries with backoff of requests that failed with 429, 5xx or a timeout; a 400 is never retried "
        "(default: %(default)s).",
    )
    group.add_argument(
        "--request-timeout",
        type=float,
        default=None,
        help=f"Seconds to wait for one reply (default: {RemoteSettings.request_timeout:g}, "
        f"or {_FLEX_TIMEOUT:g} with --vertex-flex).",
    )


def check_api_base(value: str | None) -> None:
    """Refuse an --api-base that is not an http(s) URL."""
    if value is not None:
        parsed = urllib.parse.urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigError(f"--api-base {value!r} is not an http(s) URL, e.g. http://127.0.0.1:8000/v1")


def settings_from_args(args: argparse.Namespace, name: str, decoding: Decoding, flex: bool = False) -> RemoteSettings:
    """Validated RemoteSettings for model ``name``; ConfigError names the flag."""
    at_least("--max-concurrent-requests", args.max_concurrent_requests)
    at_least("--max-request-retries", args.max_request_retries, 0)
    for flag, value in (
        ("--requests-per-minute", args.requests_per_minute),
        ("--request-timeout", args.request_timeout),
    ):
        if value is not None and not value > 0:
            raise ConfigError(f"{flag} must be positive, got {value}")
    check_api_base(args.api_base)
    return RemoteSettings(
        model=name,
        max_tokens=decoding.max_tokens,
        temperature=decoding.temperature,
        top_p=decoding.top_p,
        max_concurrent_requests=args.max_concurrent_requests,
        requests_per_minute=args.requests_per_minute,
        max_request_retries=args.max_request_retries,
        request_timeout=args.request_timeout or (_FLEX_TIMEOUT if flex else RemoteSettings.request_timeout),
        # A batch's calls share a pool of max_concurrent_requests threads; several calls per thread keep the pool
        # busy while a batch's slowest calls finish (bench/concurrency.py: ratio 0.87 at 1x, 0.90 at 4x).
        batch_size=decoding.batch_or(4 * args.max_concurrent_requests),
    )
