"""GeminiHandler: Gemini on Vertex AI through google-genai, one generateContent call per element, JSON by schema."""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

from transforms.elements import Completion, PromptRequest, token_budget
from transforms.models.remote import CallFailed, RemoteHandler, RemoteSettings, is_retryable_status

__all__ = [
    "GeminiSettings",
    "GeminiHandler",
    "gemini_schema",
    "check_credentials",
    "FLEX_HEADER",
    "add_arguments",
    "settings_from_args",
    "check_unused",
    "make_handler",
]

_LOGGER = logging.getLogger(__name__)

# Vertex AI Flex pay-as-you-go: requests carrying this header are served from the Flex tier (global endpoint only).
FLEX_HEADER = "X-Vertex-AI-LLM-Shared-Request-Type"
_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)


@dataclasses.dataclass(frozen=True)
class GeminiSettings:
    """Where the Vertex AI calls go.

    Attributes:
        project: Google Cloud project billed for the calls.
        location: Vertex AI location (``us-central1``, ``global``).
        api_base: Endpoint override (a private endpoint, or a local stand-in in tests); None for Vertex AI's own.
        flex: Ask for Flex pay-as-you-go (needs location ``global``).
        thinking_budget: Thinking tokens allowed per reply (None: the model's default; 0 turns thinking off
            on models that allow it). Thinking tokens count against ``max_tokens``.
    """

    project: str
    location: str
    api_base: str | None = None
    flex: bool = False
    thinking_budget: int | None = None


def check_credentials() -> str | None:
    """Check that Application Default Credentials exist and yield a token; returns their project, if any.

    Raises:
        ValueError: with what to set, when there are no credentials or they cannot get a token.
    """
    import google.auth
    import google.auth.exceptions
    from google.auth.transport.requests import Request

    try:
        credentials, project = google.auth.default(scopes=_SCOPES)
    except google.auth.exceptions.DefaultCredentialsError as err:
        raise ValueError(
            "no Application Default Credentials found: run 'gcloud auth application-default login', or set "
            f"GOOGLE_APPLICATION_CREDENTIALS to a service-account key file ({err})"
        ) from None
    try:
        credentials.refresh(Request())
    except (google.auth.exceptions.RefreshError, google.auth.exceptions.TransportError) as err:
        raise ValueError(
            f"Application Default Credentials could not get an access token ({err}); "
            "run 'gcloud auth application-default login' again, or check GOOGLE_APPLICATION_CREDENTIALS"
        ) from None
    return project


def gemini_schema(schema: Any) -> Any:
    """Our JSON schema as a Vertex AI response schema (OpenAPI subset: upper-case types, no additionalProperties)."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    if "type" in schema:
        out["type"] = str(schema["type"]).upper()
    if "properties" in schema:
        out["properties"] = {k: gemini_schema(v) for k, v in schema["properties"].items()}
        out["property_ordering"] = list(schema.get("required") or schema["properties"])
    if "required" in schema:
        out["required"] = list(schema["required"])
    if "items" in schema:
        out["items"] = gemini_schema(schema["items"])
    for ours, theirs in (
        ("minItems", "min_items"),
        ("maxItems", "max_items"),
        ("minLength", "min_length"),
        ("maxLength", "max_length"),
    ):
        if ours in schema:
            out[theirs] = schema[ours]
    return out


class GeminiHandler(RemoteHandler):
    """Gemini through ``google-genai`` with ``vertexai=True``: Application Default Credentials, one call per element."""

    backend = "gemini"

    def __init__(self, settings: RemoteSettings, gemini: GeminiSettings):
        super().__init__(settings)
        self._gemini = gemini

    def _connect(self):
        import httpx
        from google import genai
        from google.genai import types

        size = self._settings.max_concurrent_requests
        http_options = types.HttpOptions(
            base_url=self._gemini.api_base,
            timeout=int(self._settings.request_timeout * 1000),
            headers={FLEX_HEADER: "flex"} if self._gemini.flex else None,
            # Retries belong to Beam's RemoteModelHandler (429/5xx/timeouts only); the client makes one attempt.
            retry_options=types.HttpRetryOptions(attempts=1),
            client_args={"limits": httpx.Limits(max_connections=size, max_keepalive_connections=size)},
        )
        return genai.Client(
            vertexai=True, project=self._gemini.project, location=self._gemini.location, http_options=http_options
        )

    def _config(self, request: PromptRequest):
        from google.genai import types

        thinking = None
        if self._gemini.thinking_budget is not None:
            thinking = types.ThinkingConfig(thinking_budget=self._gemini.thinking_budget)
        return types.GenerateContentConfig(
            temperature=self._settings.temperature,
            top_p=self._settings.top_p,
            max_output_tokens=token_budget(request, self._settings.max_tokens),
            seed=request.sampling_seed,
            candidate_count=1,
            response_mime_type="application/json",
            response_schema=types.Schema.model_validate(gemini_schema(json.loads(request.schema_json))),
            thinking_config=thinking,
        )

    def _call(self, client, request: PromptRequest) -> Completion:
        from google.genai import errors, types

        try:
            response = client.models.generate_content(
                model=self._settings.model, contents=request.prompt, config=self._config(request)
            )
        except errors.APIError as err:
            raise CallFailed(
                f"HTTP {err.code} {err.status or ''}: {err.message or err}".replace("  ", " "),
                retryable=is_retryable_status(err.code),
            ) from None
        except json.JSONDecodeError as err:
            raise CallFailed(f"the service answered with a body that is not JSON ({err})", retryable=False) from None
        candidates = response.candidates or []
        if not candidates:
            feedback = response.prompt_feedback
            reason = feedback.block_reason if feedback is not None else None
            raise CallFailed(f"the service returned no candidate (prompt block reason: {reason})", retryable=False)
        candidate = candidates[0]
        parts = (candidate.content.parts if candidate.content is not None else None) or []
        text = "".join(part.text for part in parts if part.text and not part.thought)
        usage = response.usage_metadata
        return Completion(
            text=text,
            model=self.model_name,
            finish_reason="length" if candidate.finish_reason == types.FinishReason.MAX_TOKENS else "stop",
            prompt_tokens=int((usage.prompt_token_count if usage else 0) or 0),
            completion_tokens=int((usage.candidates_token_count if usage else 0) or 0),
        )


# --- flags of the gemini backend (the table in transforms/models/__init__.py lists this module) ---


def add_arguments(parser) -> None:
    """The gemini flag group (plus the shared remote group); defaults come from GeminiSettings."""
    from transforms.models import gemini_batch, remote_options

    remote_options.add_arguments(parser)
    gemini_batch.add_arguments(parser)
    group = parser.add_argument_group("gemini (--model gemini:<model>; Beam's --project and --region)")
    group.add_argument(
        "--vertex-location",
        default=None,
        help="Vertex AI location when it differs from --region, e.g. global (default: --region, else "
        "GOOGLE_CLOUD_LOCATION).",
    )
    group.add_argument(
        "--vertex-flex",
        action="store_true",
        default=GeminiSettings.flex,
        help="Use Vertex AI Flex pay-as-you-go: half price, slower, more throttling; location global only.",
    )
    group.add_argument(
        "--thinking-budget",
        type=int,
        default=GeminiSettings.thinking_budget,
        help="Thinking tokens per reply, counted against --max-tokens (default: the model's own; 0: off).",
    )


def check_unused(args) -> None:
    """Refuse the batch prediction flags for another backend."""
    from transforms.models import gemini_batch

    gemini_batch.settings_from_args(args, "", None)


def settings_from_args(args, name: str, decoding, output: str = ""):
    """Validated RemoteBackend (shared, Gemini and batch settings); location, credentials and project are checked."""
    import os

    from transforms.config import ConfigError, at_least
    from transforms.models import gemini_batch, remote_options

    remote = remote_options.settings_from_args(args, name, decoding, flex=args.vertex_flex)
    if args.thinking_budget is not None:
        at_least("--thinking-budget", args.thinking_budget, 0)
    cloud = args.cloud
    location = args.vertex_location or cloud.region or os.environ.get("GOOGLE_CLOUD_LOCATION")
    if not location:
        raise ConfigError(
            f"--model {args.model}: no Vertex AI location; pass --region (e.g. us-central1) or --vertex-location, "
            "or set GOOGLE_CLOUD_LOCATION"
        )
    if args.vertex_flex and location != "global":
        raise ConfigError(
            f"--vertex-flex: Flex pay-as-you-go is served only by the global endpoint, not {location}; "
            "pass --vertex-location global (Dataflow keeps its --region)"
        )
    try:
        credentials_project = check_credentials()
    except ValueError as err:
        raise ConfigError(f"--model {args.model}: {err}") from None
    project = cloud.project or os.environ.get("GOOGLE_CLOUD_PROJECT") or credentials_project
    if not project:
        raise ConfigError(
            f"--model {args.model}: no Google Cloud project; pass --project PROJECT or set GOOGLE_CLOUD_PROJECT"
        )
    service = GeminiSettings(project, location, args.api_base, args.vertex_flex, args.thinking_budget)
    return remote_options.RemoteBackend(remote, service, gemini_batch.settings_from_args(args, output, service))


def make_handler(settings):
    """The RunInference handler of a RemoteBackend made by settings_from_args (batch jobs with --vertex-batch)."""
    if settings.batch is not None:
        from transforms.models.gemini_batch import GeminiBatchHandler

        return GeminiBatchHandler(settings.remote, settings.service, settings.batch)
    return GeminiHandler(settings.remote, settings.service)
