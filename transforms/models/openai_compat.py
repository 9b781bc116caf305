"""OpenAICompatHandler: any OpenAI-compatible server (vLLM, Ollama, llama.cpp, OpenAI) through the openai client.

Structured output, best first: ``response_format`` ``json_schema`` (OpenAI, vLLM, Ollama, llama.cpp's
llama-server), ``json_object`` with a ``schema`` (llama-cpp-python's server), plain ``json_object`` (JSON mode).
With ``structured_output="auto"`` the handler starts at the top and steps down, once per worker process,
when the server rejects a ``response_format`` it does not know; the other settings pin one level.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading

from transforms.elements import Completion, PromptRequest, token_budget
from transforms.models.remote import CallFailed, RemoteHandler, RemoteSettings, is_retryable_status, strip_schema

__all__ = [
    "OpenAISettings",
    "OpenAICompatHandler",
    "openai_schema",
    "response_format",
    "STRUCTURED_OUTPUT",
    "add_arguments",
    "settings_from_args",
    "make_handler",
]

_LOGGER = logging.getLogger(__name__)

# The levels of structured output, best first.
_LEVELS = ("json_schema", "json_object_schema", "json_object")
STRUCTURED_OUTPUT = ("auto", *_LEVELS)


@dataclasses.dataclass(frozen=True)
class OpenAISettings:
    """Where the calls go and how structured output is asked for.

    Attributes:
        api_base: The server's base URL, up to and including ``/v1``.
        api_key_env: Environment variable holding the API key (servers without keys get a placeholder).
        structured_output: ``auto`` or one of the levels ``json_schema``, ``json_object_schema``, ``json_object``.
    """

    api_base: str
    api_key_env: str = "OPENAI_API_KEY"
    structured_output: str = "auto"


def openai_schema(schema: dict, keep: tuple = ()) -> dict:
    """Our JSON schema as OpenAI strict mode accepts it: no length bounds, and an object at the root.

    A brainstorm array is wrapped as ``{"tasks": [...]}`` (the parser unwraps a single-array object).
    ``keep`` names keywords to keep all the same.
    """
    schema = strip_schema(schema, keep)
    if schema.get("type") != "object":
        schema = {
            "type": "object",
            "properties": {"tasks": schema},
            "required": ["tasks"],
            "additionalProperties": False,
        }
    return schema


def response_format(level: str, schema: dict) -> dict:
    """The ``response_format`` body of one structured-output level, for our JSON schema ``schema``."""
    if level == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {"name": "reply", "schema": openai_schema(schema), "strict": True},
        }
    if level == "json_object_schema":
        # llama-cpp-python turns this schema into a grammar: minLength 1 keeps strings non-empty at no cost
        # (only a large maxLength is expensive there).
        return {"type": "json_object", "schema": openai_schema(schema, keep=("minLength",))}
    return {"type": "json_object"}


def _rejects_format(status: int | None, message: str) -> bool:
    # Servers say so with a 400 or 422 (some, like llama-cpp-python's, with a 500) that names the field.
    text = message.lower()
    return status in (400, 422, 500) and ("response_format" in text or "json_schema" in text)


class _Client:
    """The openai client and the structured-output level this process settled on."""

    def __init__(self, client, level: str, adaptive: bool):
        self.client = client
        self.level = level
        self.adaptive = adaptive
        self._lock = threading.Lock()

    def step_down(self, rejected: str, message: str) -> bool:
        """Use the next level after ``rejected``; False when there is none or adapting is off."""
        with self._lock:
            if not self.adaptive or rejected == _LEVELS[-1]:
                return False
            if self.level == rejected:
                self.level = _LEVELS[_LEVELS.index(rejected) + 1]
                _LOGGER.warning(
                    "the server rejected response_format %s (%s); using %s", rejected, message[:200], self.level
                )
            return True


class OpenAICompatHandler(RemoteHandler):
    """Chat completions on an OpenAI-compatible server, one call per element, JSON by schema."""

    backend = "openai"

    def __init__(self, settings: RemoteSettings, server: OpenAISettings):
        super().__init__(settings)
        self._server = server

    def _connect(self) -> _Client:
        import openai

        client = openai.OpenAI(
            base_url=self._server.api_base,
            api_key=os.environ.get(self._server.api_key_env) or "unused",  # local servers take any key
            max_retries=0,  # retries belong to Beam's RemoteModelHandler (429/5xx/timeouts only)
            timeout=self._settings.request_timeout,
        )
        auto = self._server.structured_output == "auto"
        return _Client(client, _LEVELS[0] if auto else self._server.structured_output, adaptive=auto)

    def _call(self, client: _Client, request: PromptRequest) -> Completion:
        import openai

        schema = json.loads(request.schema_json)
        while True:
            level = client.level
            try:
                response = client.client.chat.completions.create(
                    model=self._settings.model,
                    messages=[{"role": "user", "content": request.prompt}],
                    max_tokens=token_budget(request, self._settings.max_tokens),
                    temperature=self._settings.temperature,
                    top_p=self._settings.top_p,
                    seed=request.sampling_seed,
                    response_format=response_format(level, schema),
                )
                break
            except openai.APIStatusError as err:
                body = err.body if isinstance(err.body, dict) else {}
                message = f"HTTP {err.status_code}: {body.get('message') or err.message}"
                if _rejects_format(err.status_code, message) and client.step_down(level, message):
                    continue
                raise CallFailed(message, retryable=is_retryable_status(err.status_code)) from None
            except openai.APITimeoutError:
                raise CallFailed(f"no answer within {self._settings.request_timeout:g} s", retryable=True) from None
            except openai.APIConnectionError as err:
                raise CallFailed(f"connection failed: {err.__cause__ or err}", retryable=True) from None
        if isinstance(response, str):  # the body was not JSON (the client hands it back as text)
            raise CallFailed(f"the server answered with a body that is not JSON: {response[:120]!r}", retryable=False)
        if not response.choices:
            raise CallFailed("the server returned no choice", retryable=False)
        choice = response.choices[0]
        usage = response.usage
        return Completion(
            text=(choice.message.content if choice.message is not None else None) or "",
            model=self.model_name,
            finish_reason="length" if choice.finish_reason == "length" else "stop",
            prompt_tokens=int((usage.prompt_tokens if usage else 0) or 0),
            completion_tokens=int((usage.completion_tokens if usage else 0) or 0),
        )


# --- flags of the openai backend (the table in transforms/models/__init__.py lists this module) ---


def add_arguments(parser) -> None:
    """The openai flag group (plus the shared remote group); defaults come from OpenAISettings."""
    from transforms.models import remote_options

    remote_options.add_arguments(parser)
    group = parser.add_argument_group("OpenAI-compatible server (--model openai:<model>, --api-base)")
    group.add_argument(
        "--api-key-env",
        default=OpenAISettings.api_key_env,
        help="Environment variable holding the API key, read on each worker (default: %(default)s).",
    )
    group.add_argument(
        "--structured-output",
        choices=STRUCTURED_OUTPUT,
        default=OpenAISettings.structured_output,
        help="How JSON is requested: json_schema, json_object_schema, json_object, or auto (default), which steps "
        "down when the server rejects one (docs/backends.md).",
    )


def settings_from_args(args, name: str, decoding, output: str = ""):
    """Validated (RemoteSettings, OpenAISettings); --api-base is required."""
    from transforms.config import ConfigError
    from transforms.models import remote_options

    remote = remote_options.settings_from_args(args, name, decoding)
    if args.api_base is None:
        raise ConfigError(
            f"--model {args.model}: --api-base is required, the server's base URL, e.g. http://127.0.0.1:8000/v1"
        )
    return remote_options.RemoteBackend(remote, OpenAISettings(args.api_base, args.api_key_env, args.structured_output))


def make_handler(settings) -> OpenAICompatHandler:
    """The RunInference handler of a RemoteBackend made by settings_from_args."""
    return OpenAICompatHandler(settings.remote, settings.service)
