"""The generation job: `embedgen generate` / `python -m pipelines.generate`."""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from collections.abc import Sequence

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines import summary
from pipelines.cli import configure_logging
from pipelines.options import ConfigError, GenerationConfig, check_beam_flags, parse_args, to_config
from transforms import recipe
from transforms.bigquery import WriteDeadLettersToBigQuery, WriteExamplesToBigQuery
from transforms.brainstorm import BrainstormTasks
from transforms.inference import CallModel
from transforms.mix import size_plan
from transforms.models import make_handler
from transforms.quality.stage import CheckQuality, quality_summary, rejected_prefix
from transforms.records import example_row
from transforms.render import RenderPrompts
from transforms.resume import DropFinished, ReadFinishedIds, ReadJournal, delete_journal, has_journal
from transforms.sampling import SampleAttributes, generation_elements, symmetric_elements
from transforms.sinks import WriteDeadLetters, WriteExamples, delete_outputs, existing_outputs

__all__ = ["build_pipeline", "run", "main"]

_LOGGER = logging.getLogger(__name__)


class _ToRow(beam.DoFn):
    """(request, completion, outputs) -> output row, counted by category, language and tokens."""

    def __init__(self, run_seed: int):
        self._run_seed = run_seed

    def setup(self):
        self._counters = {}
        self._prompt_tokens = Metrics.counter("embedgen", "tokens/prompt")
        self._completion_tokens = Metrics.counter("embedgen", "tokens/completion")

    def _inc(self, name: str):
        counter = self._counters.get(name)
        if counter is None:
            counter = self._counters[name] = Metrics.counter("embedgen", name)
        counter.inc()

    def process(self, parsed):
        request, completion, outputs = parsed
        row = example_row(request, completion, outputs, self._run_seed)
        task_type = recipe.get_task_type(request.element.category)
        language = task_type.language_label(dict(request.element.attributes))
        self._inc(f"written/{row['category']}")
        self._inc(f"rows_by_language/{row['category']}/{language}")
        self._prompt_tokens.inc(completion.prompt_tokens)
        self._completion_tokens.inc(completion.completion_tokens)
        yield row


def build_pipeline(p: beam.Pipeline, config: GenerationConfig, handler=None) -> dict:
    """Build the generation graph on ``p``.

    Args:
        p: The pipeline to build on.
        config: Validated settings.
        handler: A ModelHandler to use instead of the one ``config`` names (tests pass fakes).

    Returns:
        ``{"rows": PCollection[dict], "dead": PCollection[DeadLetter], "writes": ...}``.
    """
    handler = handler or make_handler(config)
    seed = config.seed
    element_sets = []
    dead_sets = []
    logged = finished = None
    if config.resume:
        if has_journal(config.output):
            logged = p | "ReadJournal" >> ReadJournal(config.output)
        earlier = existing_outputs(config.output)
        if earlier:
            finished = p | "ReadFinishedIds" >> ReadFinishedIds(earlier)
    plan = size_plan(config)
    per_task = dict(plan.examples_per_task)
    if config.brainstorm_categories:
        tasks, brainstorm_dead = p | "BrainstormTasks" >> BrainstormTasks(
            config.brainstorm_categories,
            dict(plan.rounds),
            dict(plan.tasks),
            seed,
            handler,
            config.max_parse_retries,
            journal=config.output,
            logged=logged,
            finished=finished,
            near_dup_threshold=config.quality.task_dedup_threshold,
            budget=config.budget,
        )
        dead_sets.append(brainstorm_dead)
        element_sets.append(
            tasks
            | "ExamplesPerTask"
            >> beam.FlatMapTuple(lambda category, task: generation_elements(category, task, per_task[category], seed))
        )
    if config.symmetric_categories:
        element_sets.append(
            p
            | "SymmetricTypes" >> beam.Create(list(plan.symmetric))
            | "SymmetricElements"
            >> beam.FlatMapTuple(lambda category, count: symmetric_elements(category, count, seed))
        )
    elements = element_sets | "AllElements" >> beam.Flatten()
    if finished is not None:
        elements = elements | "DropFinished" >> DropFinished(finished)
    rows, dead = (
        elements
        # Spread the elements over the workers here, while they are small: their prompts are rendered
        # after the shuffle, so no prompt text is shuffled (or held by an in-memory runner) before its call.
        | "SpreadElements" >> beam.Reshuffle()
        | "SampleAttributes" >> SampleAttributes(config.sampling)
        | "RenderPrompts" >> RenderPrompts(seed, config.budget)
        | "GenerateExamples"
        >> CallModel(
            handler, seed, config.max_parse_retries, config.output, logged, spread_first=False, finish=_ToRow(seed)
        )
    )
    dead_sets.append(dead)
    checked = rows | "CheckQuality" >> CheckQuality(config.quality)
    rows = checked["rows"]
    checked["rejected"] | "WriteRejected" >> WriteExamples(
        rejected_prefix(config.output), config.categories, config.run_id
    )
    all_dead = dead_sets | "AllDeadLetters" >> beam.Flatten()
    writes = rows | "WriteExamples" >> WriteExamples(config.output, config.categories, config.run_id)
    all_dead | "WriteDeadLetters" >> WriteDeadLetters(config.output, config.run_id)
    if config.bigquery is not None:
        rows | "WriteExamplesToBigQuery" >> WriteExamplesToBigQuery(config.bigquery, config.categories)
        all_dead | "WriteDeadLettersToBigQuery" >> WriteDeadLettersToBigQuery(config.bigquery)
    return {"rows": rows, "dead": all_dead, "writes": writes, "rejected": checked["rejected"]}


def _prepare_output(config: GenerationConfig) -> None:
    """Refuse to mix runs in one --output; check it is writable; with --overwrite, delete the earlier run's files."""
    from apache_beam.io.filesystems import FileSystems

    try:
        earlier = existing_outputs(config.output)
        journal = has_journal(config.output)
        if (earlier or journal) and not (config.overwrite or config.resume):
            what = f"{len(earlier)} Avro file(s)" if earlier else "the reply journal of an interrupted run"
            raise ConfigError(
                f"--output {config.output} already holds {what} of an earlier run; pass --resume to finish or "
                "extend that run, --overwrite to replace it, or choose another --output"
            )
        if not FileSystems.exists(config.output):
            FileSystems.mkdirs(config.output)
        if "://" not in config.output:
            with tempfile.NamedTemporaryFile(dir=config.output):
                pass
    except OSError as err:
        raise ConfigError(f"--output {config.output} is not a writable directory: {err}") from None
    if config.overwrite and (earlier or journal):
        deleted = delete_outputs(config.output) + delete_journal(config.output)
        _LOGGER.info("--overwrite: deleted %d file(s) of an earlier run", deleted)


def run(argv: Sequence[str] | None = None, handler=None) -> int:
    """Parse flags, validate, run the job, print the summary. Returns the process exit code."""
    args, beam_args = parse_args(argv)
    try:
        check_beam_flags(beam_args)
        config = to_config(args)
        options = PipelineOptions(beam_args)
        _prepare_output(config)
    except ConfigError as err:
        print(f"embedgen generate: error: {err}", file=sys.stderr)
        return 2
    started = time.monotonic()
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, config, handler)
    result = pipeline.run()
    result.wait_until_finish()
    report = summary.from_metrics(result, config, time.monotonic() - started)
    print(summary.format_summary(report))
    print(quality_summary(result, config.output))
    return 0 if report.balanced else 1


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging()
    return run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
