"""Gemini batch prediction on Vertex AI (--vertex-batch): requests staged as JSONL, a batch job per RunInference batch.

The generate stage's requests of one attempt are put into fixed batches: each request goes to the bucket chosen by
a seeded hash of its element id and attempt (the bucket count comes from the attempt's request count, taken before
replies logged by an earlier run are set aside), and a bucket larger than ``--vertex-batch-size`` is cut into equal
parts in key order. A batch is therefore the same in a resumed run, and its digest (of its request keys) names its
job in the journal (``<output>/_journal/batchjob-<digest>.jsonl``): a finished job's results are read again and a
job still running is polled again, not submitted twice. A batch with no record first lists the jobs created under
its display name (one list call per new batch), so a job whose process died before recording it is adopted, not
created again (gemini_batch_jobs says when a found job is not adopted). ``SubmitJobs`` stages and submits every
batch of the attempt before ``RunInference`` waits for them (one RunInference batch = one job: polled with backoff,
its result files read back, each line matched to its request by key). A request without a line, with a failed line,
or in a job that failed comes back as a retryable error, so ParseAndValidate asks it again in the next attempt and
dead-letters it after the last. Brainstorm requests stay online (GeminiHandler): they are few, and generation waits
for them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import time
from collections.abc import Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import ModelHandler, PredictionResult, RunInference

from transforms import metrics
from transforms.config import ConfigError
from transforms.elements import STAGE_GENERATE, Completion, PromptRequest
from transforms.models import gemini_batch_jobs as jobs
from transforms.models.gemini import GeminiHandler
from transforms.models.gemini_batch_io import (
    batch_digest,
    format_jobs,
    line_completion,
    line_key,
    load_record,
    new_record,
    read_job_records,
    request_key,
    request_line,
    save_record,
)
from transforms.models.remote import is_retryable_status, is_transport_error

__all__ = [
    "VertexBatchSettings",
    "GeminiBatchHandler",
    "add_arguments",
    "settings_from_args",
    "request_key",
    "batch_digest",
    "read_job_records",
    "format_jobs",
]  # the last four live in gemini_batch_io and are re-exported here

_LOGGER = logging.getLogger(__name__)

MAX_BATCH_SIZE = 200_000  # Vertex AI's limit of requests per Gemini batch prediction job
SUCCEEDED = ("JOB_STATE_SUCCEEDED", "JOB_STATE_PARTIALLY_SUCCEEDED")
ENDED = (*SUCCEEDED, "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED")


@dataclasses.dataclass(frozen=True)
class VertexBatchSettings:
    """Where batch jobs stage their files and record themselves, and how they are sized and polled.

    Attributes:
        staging: Folder (gs:// on Google Cloud) for each job's input.jsonl and its output folder.
        journal: The run's --output; jobs are recorded under its ``_journal/``.
        seed: Run seed (bucket choice).
        batch_size: Most requests per job.
        poll_seconds: First wait between two polls of a job; it grows 1.5x per poll up to ``poll_max_seconds``.
        poll_max_seconds: Longest wait between two polls.
    """

    staging: str
    journal: str
    seed: int
    batch_size: int = 10_000
    poll_seconds: float = 30.0
    poll_max_seconds: float = 300.0


def add_arguments(parser) -> None:
    """The --vertex-batch flag group."""
    group = parser.add_argument_group("Gemini batch prediction (--model gemini:<model> --vertex-batch)")
    group.add_argument(
        "--vertex-batch",
        action="store_true",
        help="gemini: send the generate stage's requests as Vertex AI batch prediction jobs (half price, own quota, "
        "results in minutes to hours) staged as JSONL under --temp_location; brainstorm calls stay online.",
    )
    group.add_argument(
        "--vertex-batch-size",
        type=int,
        default=10_000,
        help=f"Most requests per batch job, 1 to {MAX_BATCH_SIZE} (default: %(default)s).",
    )
    group.add_argument(
        "--vertex-batch-poll",
        type=float,
        default=30.0,
        help="Seconds before the first poll of a job; later polls back off 1.5x up to 300 s (default: %(default)s).",
    )


def settings_from_args(args, output: str, gemini) -> VertexBatchSettings | None:
    """Validated settings, None without --vertex-batch; ConfigError names the flag."""
    if not args.vertex_batch:
        for flag, value, default in (("--vertex-batch-size", args.vertex_batch_size, 10_000),
                                     ("--vertex-batch-poll", args.vertex_batch_poll, 30.0)):  # fmt: skip
            if value != default:
                raise ConfigError(f"{flag} applies only with --vertex-batch")
        return None
    if gemini is None:
        raise ConfigError(
            f"--vertex-batch needs --model gemini:<model> (e.g. gemini:gemini-2.5-flash), not {args.model!r}"
        )
    if args.vertex_flex:
        raise ConfigError("--vertex-batch and --vertex-flex conflict: choose batch prediction or Flex online calls")
    if not 1 <= args.vertex_batch_size <= MAX_BATCH_SIZE:
        raise ConfigError(f"--vertex-batch-size must be between 1 and {MAX_BATCH_SIZE}, got {args.vertex_batch_size}")
    if not args.vertex_batch_poll > 0:
        raise ConfigError(f"--vertex-batch-poll must be positive, got {args.vertex_batch_poll}")
    temp = args.cloud.temp_location
    if not temp:
        raise ConfigError(
            "--vertex-batch stages its requests under --temp_location: pass --temp_location gs://BUCKET/tmp"
        )
    if gemini.api_base is None and not temp.startswith("gs://"):
        raise ConfigError(
            f"--vertex-batch: Vertex AI reads and writes batch files in Cloud Storage; --temp_location {temp!r} is not gs://"
        )
    return VertexBatchSettings(
        staging=FileSystems.join(temp.rstrip("/"), "embedgen-batches"),
        journal=output,
        seed=args.seed,
        batch_size=args.vertex_batch_size,
        poll_seconds=args.vertex_batch_poll,
        poll_max_seconds=max(args.vertex_batch_poll, 300.0),
    )


class GeminiBatchHandler(GeminiHandler):
    """GeminiHandler whose generate-stage requests go through batch prediction jobs (see the module docstring).

    As a ModelHandler it stays the online Gemini handler (brainstorm calls); ``batch_inference(all_requests)`` gives the
    PTransform CallModel uses for each attempt instead of RunInference.
    """

    def __init__(self, settings, gemini, batch: VertexBatchSettings):
        super().__init__(settings, gemini)
        self._batch = batch

    def batch_inference(self, counted) -> beam.PTransform:
        """requests -> PredictionResults; ``counted`` is the attempt's requests before logged replies were set aside."""
        return _BatchInference(self, counted)

    # ----- used by the batch stages (on the workers) -----
    def client(self):
        from google import genai
        from google.genai import types

        http = types.HttpOptions(base_url=self._gemini.api_base, timeout=int(self._settings.request_timeout * 1000))
        return genai.Client(
            vertexai=True, project=self._gemini.project, location=self._gemini.location, http_options=http
        )

    def _retrying(self, what: str, call):
        """``call()`` with up to --max-request-retries retries from 5 s on, on 429, 5xx and transport errors."""
        from google.genai import errors

        delay = min(5.0, self._batch.poll_seconds)
        for attempt in range(self._settings.max_request_retries + 1):
            try:
                return call()
            except errors.APIError as err:
                if not is_retryable_status(err.code) or attempt == self._settings.max_request_retries:
                    raise
                _LOGGER.warning("%s: HTTP %s, retrying in %.0f s", what, err.code, delay)
            except Exception as err:  # noqa: BLE001 - only transport errors are retried
                if not is_transport_error(err) or attempt == self._settings.max_request_retries:
                    raise
                _LOGGER.warning("%s: %s, retrying in %.0f s", what, type(err).__name__, delay)
            time.sleep(delay)
            delay = min(delay * 2, self._batch.poll_max_seconds)

    def submit(self, client, requests: Sequence[PromptRequest]) -> dict:
        """The journal record of the job of ``requests``: the recorded one, else one adopted, else one created now.

        A batch without a journal record first lists the jobs already created under its display name (one list
        call per new batch; a batch with a record makes none): a process that died between creating a job and
        recording it left that job running, and it is adopted (see `why_not_adopted`) instead of created again.
        """
        keys = [request_key(r) for r in requests]
        digest = batch_digest(keys)
        record = load_record(self._batch.journal, digest)
        if record is not None:
            metrics.inc(metrics.BATCH_JOBS, "reused")
            return record
        folder = FileSystems.join(self._batch.staging, digest)
        source, dest = FileSystems.join(folder, "input.jsonl"), FileSystems.join(folder, "output")
        job = jobs.adoptable_job(
            client,
            self._retrying,
            digest,
            self._settings.model,
            source,
            dest,
            lambda: jobs.file_sha256(source) == jobs.lines_sha256(self._lines(requests)),
        )
        if job is not None:
            record = new_record(digest, job, requests, source, dest, jobs.created_at(job) or time.time())
            if record["state"] in ENDED:
                _ended(record, job)
            save_record(self._batch.journal, record)
            metrics.inc(metrics.BATCH_JOBS, "adopted")
            _LOGGER.info(
                "batch job %s: adopted %s (%s), created earlier but never recorded in the journal",
                digest[:12],
                job.name,
                record["state"].removeprefix("JOB_STATE_"),
            )
            return record
        with FileSystems.create(source) as handle:
            for line in self._lines(requests):
                handle.write(line)
        job = self._retrying(f"batch job {digest[:12]}: create", lambda: self._create(client, digest, source, dest))
        record = new_record(digest, job, requests, source, dest, time.time())
        save_record(self._batch.journal, record)
        metrics.inc(metrics.BATCH_JOBS, "submitted")
        return record

    def _lines(self, requests: Sequence[PromptRequest]):
        for request in requests:
            line = request_line(request, self._settings, self._gemini.thinking_budget)
            yield json.dumps(line, ensure_ascii=False).encode("utf-8") + b"\n"

    def _create(self, client, digest: str, source: str, dest: str):
        from google.genai import types

        return client.batches.create(
            model=self._settings.model,
            src=types.BatchJobSource(format="jsonl", gcs_uri=[source]),
            config=types.CreateBatchJobConfig(
                display_name=jobs.display_name(digest), dest=types.BatchJobDestination(format="jsonl", gcs_uri=dest)
            ),
        )

    def wait(self, client, record: dict) -> dict:
        """Poll the recorded job with backoff until it ends; returns the record, updated and saved."""
        delay = self._batch.poll_seconds
        while record.get("state") not in ENDED:
            job = self._retrying(f"batch job {record['name']}: get", lambda: client.batches.get(name=record["name"]))
            record["state"] = str(getattr(job.state, "value", job.state))
            if record["state"] in ENDED:
                _ended(record, job)
                break
            time.sleep(delay)
            delay = min(delay * 1.5, self._batch.poll_max_seconds)
        return record

    def results(self, record: dict, requests: Sequence[PromptRequest]) -> list[Completion]:
        """One Completion per request, in order: its result line's reply, or a retryable error saying why not."""
        keys = [request_key(r) for r in requests]
        found: dict = {}
        failed = duplicates = 0
        if record["state"] in SUCCEEDED:
            if record.get("output_dir"):
                patterns = [FileSystems.join(record["output_dir"], "*.jsonl")]
            else:  # the service named no output folder: every folder under dest
                patterns = [
                    FileSystems.join(record["dest"], "*.jsonl"),
                    FileSystems.join(record["dest"], "*", "*.jsonl"),
                ]
            for match in FileSystems.match(patterns):
                for meta in match.metadata_list:
                    with FileSystems.open(meta.path) as handle:
                        for raw in handle.read().decode("utf-8").splitlines():
                            try:
                                line = json.loads(raw)
                            except ValueError:
                                continue
                            key = line_key(line) if isinstance(line, dict) else None
                            if key is None:
                                continue
                            if key in found:
                                duplicates += 1
                                continue
                            found[key] = line_completion(line, self.model_name)
                            failed += found[key].error is not None
        why = f"batch job {record['name']} ended {record['state']}" + (
            f": {record['error']}" if record.get("error") else ""
        )
        missing = Completion(
            "", self.model_name, "error", error=f"{why}; no result line for this request", retryable=True
        )
        completions = [found.get(key, missing) for key in keys]
        answered = sum(1 for key in keys if key in found)
        record.update(
            answered=answered - failed, failed_lines=failed, missing=len(keys) - answered, duplicates=duplicates
        )
        save_record(self._batch.journal, record)
        metrics.inc(metrics.BATCH_JOBS, record["state"].removeprefix("JOB_STATE_").lower())
        return completions


class _JobModelHandler(ModelHandler):
    """RunInference over (digest, requests, record): one batch = one job, waited for and read back."""

    def __init__(self, handler: GeminiBatchHandler):
        self._handler = handler

    def load_model(self):
        return self._handler.client()

    def run_inference(self, batch, model, inference_args=None):
        for _, requests, record in batch:
            record = self._handler.wait(model, record)
            yield PredictionResult(requests, self._handler.results(record, requests), self._handler.model_name)

    def batch_elements_kwargs(self):
        return {"min_batch_size": 1, "max_batch_size": 1}

    def get_metrics_namespace(self) -> str:
        return "embedgen_gemini_batch"


class _Submit(beam.DoFn):
    def __init__(self, handler: GeminiBatchHandler):
        self._handler = handler

    def setup(self):
        self._client = self._handler.client()

    def process(self, batch):
        digest, requests = batch
        yield digest, requests, self._handler.submit(self._client, requests)


def _ended(record: dict, job) -> None:
    record["ended"] = jobs.timestamp(getattr(job, "end_time", None)) or time.time()  # the service's, else when seen
    record["error"] = job.error.message if job.error is not None else None
    # The folder this job wrote (Vertex AI creates one per job under dest): results are read from it alone, so
    # a job that shared the batch's dest (one of another run, not adopted) never mixes its lines in.
    output_info = getattr(job, "output_info", None)
    record["output_dir"] = getattr(output_info, "gcs_output_directory", None) or None


def _bucket(seed: int, request: PromptRequest, buckets: int) -> int:
    digest = hashlib.sha256(f"{seed}\x1fbatch\x1f{request.element.element_id}\x1f{request.attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % buckets


def _fixed_batches(keyed, size: int):
    """One bucket -> batches of at most ``size`` requests, equal parts in key order."""
    _, requests = keyed
    ordered = sorted(requests, key=request_key)
    parts = math.ceil(len(ordered) / size)
    for i in range(parts):
        chunk = ordered[i * len(ordered) // parts : (i + 1) * len(ordered) // parts]
        yield batch_digest([request_key(r) for r in chunk]), chunk


class _BatchInference(beam.PTransform):
    def __init__(self, handler: GeminiBatchHandler, counted):
        super().__init__()
        self._handler = handler
        self._counted = counted

    def expand(self, requests):
        settings = self._handler._batch
        online, batched = requests | "ByStage" >> beam.Partition(lambda r, _: int(r.element.stage == STAGE_GENERATE), 2)
        count = self._counted | "CountRequests" >> beam.combiners.Count.Globally()
        results = (
            batched
            | "ToBucket"
            >> beam.Map(
                lambda r, n: (_bucket(settings.seed, r, max(1, math.ceil(n / settings.batch_size))), r),
                n=beam.pvalue.AsSingleton(count),
            )
            | "GroupBuckets" >> beam.GroupByKey()
            | "FixedBatches" >> beam.FlatMap(_fixed_batches, settings.batch_size)
            | "SubmitJobs" >> beam.ParDo(_Submit(self._handler))
            # Every batch of the attempt is submitted before any is waited for.
            | "AfterSubmit" >> beam.Reshuffle()
            | "AwaitJobs" >> RunInference(_JobModelHandler(self._handler))
            | "PerRequest"
            >> beam.FlatMap(
                lambda r: [PredictionResult(q, c, r.model_id) for q, c in zip(r.example, r.inference, strict=True)]
            )
        )
        answered_online = online | "Online" >> RunInference(self._handler)
        return [results, answered_online] | "Merge" >> beam.Flatten()
