"""The generation job: `embedgen generate` / `python -m pipelines.generate`."""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from collections.abc import Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines import cli, summary
from pipelines.lock import OutputLock
from pipelines.options import DESCRIPTION, ConfigError, GenerationConfig, add_arguments, to_config
from pipelines.progress import ProgressReporter
from transforms.bigquery import WriteDeadLettersToBigQuery, WriteExamplesToBigQuery
from transforms.brainstorm import BrainstormTasks
from transforms.examples import GenerateExamples
from transforms.exclude import EarlierTasks, ReadEarlierRows, exclusion_summary
from transforms.inference import ModelCalls
from transforms.mix import size_plan
from transforms.models import make_handler
from transforms.models.remote import direct_runner_args
from transforms.models.remote_options import RemoteBackend
from transforms.quality.stage import CheckQuality, rejected_prefix
from transforms.render import RenderPrompts
from transforms.resume import DropFinished, ReadFinishedIds, ReadJournal, delete_journal, has_journal
from transforms.sampling import SampleAttributes, generation_elements, symmetric_elements
from transforms.sinks import WriteDeadLetters, WriteExamples, delete_outputs, existing_outputs

__all__ = ["build_pipeline", "run", "main"]

_LOGGER = logging.getLogger(__name__)


def _earlier_run(p: beam.Pipeline, config: GenerationConfig) -> tuple:
    """With --resume: (replies logged in the journal, ids already finished under --output), else (None, None)."""
    logged = finished = None
    if config.resume:
        if has_journal(config.output):
            logged = p | "ReadJournal" >> ReadJournal(config.output)
        earlier = existing_outputs(config.output)
        if earlier:
            finished = p | "ReadFinishedIds" >> ReadFinishedIds(earlier)
    return logged, finished


def _earlier_runs(p: beam.Pipeline, config: GenerationConfig) -> tuple:
    """With --exclude-from: ((kept, row) of the earlier runs' example rows, their (category, task)), else Nones."""
    if config.incremental is None or not config.incremental.exclude_files:
        return None, None
    rows = p | "ReadEarlierRuns" >> ReadEarlierRows(config.incremental.exclude_files)
    return rows, rows | "EarlierTasks" >> EarlierTasks()


def _elements(p: beam.Pipeline, config: GenerationConfig, calls: ModelCalls, finished, earlier_tasks=None) -> tuple:
    """The elements to generate (brainstormed tasks x examples, the symmetric types) and brainstorm dead letters."""
    seed = config.seed
    plan = size_plan(config)
    per_task = dict(plan.examples_per_task)
    element_sets, dead_sets = [], []
    if config.brainstorm_categories:
        tasks, brainstorm_dead = p | "BrainstormTasks" >> BrainstormTasks(
            config.brainstorm_categories,
            dict(plan.rounds),
            dict(plan.tasks),
            calls,
            finished=finished,
            near_dup_threshold=config.quality.task_dedup_threshold,
            templates=config.templates,
            contamination=config.contamination,
            remove_contaminated=config.quality.filter == "reject",
            earlier_tasks=earlier_tasks,
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
    return elements, dead_sets


def _write(config: GenerationConfig, rows, rejected, dead):
    """Avro (and BigQuery) sinks of the rows, the rejected rows and the dead letters; returns the rows' writes."""
    rejected | "WriteRejected" >> WriteExamples(rejected_prefix(config.output), config.categories, config.run_id)
    writes = rows | "WriteExamples" >> WriteExamples(config.output, config.categories, config.run_id)
    dead | "WriteDeadLetters" >> WriteDeadLetters(config.output, config.run_id)
    if config.bigquery is not None:
        rows | "WriteExamplesToBigQuery" >> WriteExamplesToBigQuery(config.bigquery, config.categories)
        dead | "WriteDeadLettersToBigQuery" >> WriteDeadLettersToBigQuery(config.bigquery)
    return writes


def build_pipeline(p: beam.Pipeline, config: GenerationConfig, handler=None) -> dict:
    """Build the generation graph on ``p``.

    Args:
        p: The pipeline to build on.
        config: Validated settings.
        handler: A ModelHandler to use instead of the one ``config`` names (tests pass fakes).

    Returns:
        ``{"rows": PCollection[dict], "dead": PCollection[DeadLetter], "writes": ..., "rejected": ...}``.
    """
    logged, finished = _earlier_run(p, config)
    calls = ModelCalls(handler or make_handler(config), config.seed, config.max_parse_retries, config.output, logged)
    earlier_rows, earlier_tasks = _earlier_runs(p, config)
    elements, dead_sets = _elements(p, config, calls, finished, earlier_tasks)
    rows, dead = (
        elements
        # Spread the elements over the workers here, while they are small: their prompts are rendered
        # after the shuffle, so no prompt text is shuffled (or held by an in-memory runner) before its call.
        | "SpreadElements" >> beam.Reshuffle()
        | "SampleAttributes" >> SampleAttributes(config.sampling)
        | "RenderPrompts" >> RenderPrompts(config.seed, config.templates, config.budget)
        | "GenerateExamples" >> GenerateExamples(calls)
    )
    checked = rows | "CheckQuality" >> CheckQuality(config.quality, config.contamination, earlier_rows)
    all_dead = [*dead_sets, dead] | "AllDeadLetters" >> beam.Flatten()
    writes = _write(config, checked["rows"], checked["rejected"], all_dead)
    return {"rows": checked["rows"], "dead": all_dead, "writes": writes, "rejected": checked["rejected"]}


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


def _execute(config: GenerationConfig, beam_args, handler=None) -> int:
    online = isinstance(config.model.settings, RemoteBackend) and config.model.settings.batch is None
    if online:
        beam_args = direct_runner_args(beam_args, config.model.settings.remote.max_concurrent_requests)
    options = PipelineOptions(beam_args)
    if config.dry_run is not None:  # prints the estimate; writes nothing, not even --output itself
        from pipelines import dry_run

        return dry_run.run(config, config.dry_run, handler)
    with OutputLock(config.output):  # a second run on this --output is refused (ConfigError: exit 2)
        _prepare_output(config)
        if config.incremental is not None and config.incremental.seed != config.incremental.base_seed:
            _LOGGER.info("%s", config.incremental.describe_seed())
        started = time.monotonic()
        pipeline = beam.Pipeline(options=options)
        build_pipeline(pipeline, config, handler)
        progress = None if config.terminal.quiet else ProgressReporter(config).start()
        try:
            result = pipeline.run()
            if progress is not None:
                progress.attach(result)  # runners whose run() returns while the job runs: their live counters
            result.wait_until_finish()
        finally:
            if progress is not None:
                progress.stop()
        report = summary.from_metrics(result, config, time.monotonic() - started)
        print(summary.format_summary(report))
        if config.incremental is not None and config.incremental.exclude_files:
            print(exclusion_summary(result))
        return 0 if report.balanced else 1


COMMAND = cli.Command("generate", DESCRIPTION, add_arguments, to_config, _execute)


def run(argv: Sequence[str] | None = None, handler=None) -> int:
    """Parse flags, validate, run the job, print the summary. Returns the process exit code.

    Args:
        argv: The flags (Beam's included).
        handler: A ModelHandler to use instead of the one the flags name (tests pass fakes).
    """
    return cli.run_command(COMMAND, argv, handler=handler)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.main_of(COMMAND, argv)


if __name__ == "__main__":
    sys.exit(main())
