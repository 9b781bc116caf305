"""CallModel: prompt requests -> RunInference -> ParseAndValidate, with bounded re-asks of failed parses."""

from __future__ import annotations

import dataclasses

import apache_beam as beam
from apache_beam.ml.inference.base import ModelHandler, PredictionResult, RunInference

from transforms import metrics
from transforms.parse import ParseAndValidate
from transforms.resume import WriteJournal, journal_key

__all__ = ["CallModel", "ModelCalls"]


@dataclasses.dataclass(frozen=True)
class ModelCalls:
    """What every model call of a run needs (built once by the job, handed to each stage that calls the model).

    Attributes:
        handler: The RunInference ModelHandler.
        run_seed: The run seed (re-asks derive their sampling seed from it).
        max_retries: Re-asks after the first attempt of a reply that does not validate.
        journal: Output directory whose ``_journal/`` logs every reply as it arrives, or None.
        logged: ``(journal key, Completion)`` pairs of an earlier run (a PCollection), or None; a request found
            there is answered from the log instead of calling the model (``--resume``).
    """

    handler: ModelHandler
    run_seed: int
    max_retries: int
    journal: str | None = None
    logged: beam.PCollection | None = None


class _SplitByJournal(beam.DoFn):
    MISS = "miss"

    def process(self, keyed):
        _, group = keyed
        logged = list(group["logged"])
        for request in group["request"]:
            if logged:
                metrics.inc(metrics.JOURNAL_REUSED)
                yield PredictionResult(request, logged[0], logged[0].model)
            else:
                yield beam.pvalue.TaggedOutput(self.MISS, request)


class _Attempt(beam.PTransform):
    def __init__(self, calls: ModelCalls, reshuffle: bool):
        super().__init__()
        self._calls = calls
        self._reshuffle = reshuffle

    def expand(self, requests):
        calls = self._calls
        replayed = []
        counted = requests  # before logged replies are set aside: a batch backend sizes its batches on these
        if calls.logged is not None:
            split = (
                {"request": requests | "KeyRequests" >> beam.Map(lambda r: (journal_key(r), r)), "logged": calls.logged}
                | "MatchJournal" >> beam.CoGroupByKey()
                | "SplitByJournal" >> beam.ParDo(_SplitByJournal()).with_outputs(_SplitByJournal.MISS, main="hit")
            )
            replayed, requests = [split.hit], split[_SplitByJournal.MISS]
        if self._reshuffle:
            # Break fusion so that model calls spread over all workers, whatever produced the requests.
            requests = requests | "Reshuffle" >> beam.Reshuffle()
        batch_inference = getattr(calls.handler, "batch_inference", None)  # batch prediction jobs (gemini_batch)
        inference = batch_inference(counted) if batch_inference is not None else RunInference(calls.handler)
        results = requests | "RunInference" >> inference
        if calls.journal is not None:
            results = results | "WriteJournal" >> WriteJournal(calls.journal)
        if replayed:
            results = [results, *replayed] | "WithReplayed" >> beam.Flatten()
        return results | "ParseAndValidate" >> ParseAndValidate(calls.run_seed, calls.max_retries)


class CallModel(beam.PTransform):
    """PromptRequests -> (parsed, dead).

    Each attempt is its own RunInference stage (a Beam graph has no cycles), so a reply that
    fails to parse is asked again, with a seed derived from the attempt number, at most
    ``calls.max_retries`` times. ``parsed`` holds ``(request, completion, value)``; ``dead`` holds
    DeadLetters carrying every attempt's reason.

    Args:
        calls: The handler, run seed, re-ask limit, journal and logged replies (ModelCalls).
        spread_first: Reshuffle the requests before the first attempt. Pass False when the input was
            already redistributed upstream (the generation job reshuffles the small elements before their
            prompts are rendered, so the prompts themselves never go through a shuffle); re-asks are always
            reshuffled.
        finish: A DoFn applied to each attempt's ``(request, completion, value)`` before the attempts are
            merged; ``parsed`` then holds its outputs. The generation job turns them into rows here, so where
            the attempts meet (a Flatten, which an in-memory runner holds whole) only rows are held, not
            prompts and raw replies.
    """

    def __init__(self, calls: ModelCalls, spread_first: bool = True, finish: beam.DoFn | None = None):
        super().__init__()
        self._calls = calls
        self._spread_first = spread_first
        self._finish = finish

    def expand(self, requests):
        parsed_parts, dead_parts = [], []
        pending = requests
        for attempt in range(self._calls.max_retries + 1):
            parsed, pending, dead = pending | f"Attempt{attempt}" >> _Attempt(
                self._calls, reshuffle=attempt > 0 or self._spread_first
            )
            if self._finish is not None:
                parsed = parsed | f"Finish{attempt}" >> beam.ParDo(self._finish)
            parsed_parts.append(parsed)
            dead_parts.append(dead)
        # The last attempt never yields retries: its ParseAndValidate sees attempt == max_retries.
        parsed = parsed_parts | "MergeParsed" >> beam.Flatten()
        dead = dead_parts | "MergeDead" >> beam.Flatten()
        return parsed, dead
