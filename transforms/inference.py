"""CallModel: prompt requests -> RunInference -> ParseAndValidate, with bounded re-asks of failed parses."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from transforms.batching import InferInFixedBatches
from transforms.parse import ParseAndValidate
from transforms.resume import WriteJournal, journal_key

__all__ = ["CallModel"]


class _SplitByJournal(beam.DoFn):
    MISS = "miss"

    def process(self, keyed):
        _, group = keyed
        logged = list(group["logged"])
        for request in group["request"]:
            if logged:
                Metrics.counter("embedgen", "journal/reused").inc()
                yield PredictionResult(request, logged[0], logged[0].model)
            else:
                yield beam.pvalue.TaggedOutput(self.MISS, request)


class _Attempt(beam.PTransform):
    def __init__(
        self, handler: ModelHandler, run_seed: int, max_retries: int, journal: str | None, logged, reshuffle: bool
    ):
        super().__init__()
        self._handler = handler
        self._reshuffle = reshuffle
        self._run_seed = run_seed
        self._max_retries = max_retries
        self._journal = journal
        self._logged = logged

    def expand(self, requests):
        replayed = []
        if self._logged is not None:
            split = (
                {"request": requests | "KeyRequests" >> beam.Map(lambda r: (journal_key(r), r)), "logged": self._logged}
                | "MatchJournal" >> beam.CoGroupByKey()
                | "SplitByJournal" >> beam.ParDo(_SplitByJournal()).with_outputs(_SplitByJournal.MISS, main="hit")
            )
            replayed, requests = [split.hit], split[_SplitByJournal.MISS]
        if self._reshuffle:
            # Break fusion so that model calls spread over all workers, whatever produced the requests.
            requests = requests | "Reshuffle" >> beam.Reshuffle()
        # Plain RunInference, or fixed seeded batches when the handler decodes a batch's prompts together.
        results = requests | "RunInference" >> InferInFixedBatches(self._handler, self._run_seed)
        if self._journal is not None:
            results = results | "WriteJournal" >> WriteJournal(self._journal)
        if replayed:
            results = [results, *replayed] | "WithReplayed" >> beam.Flatten()
        return results | "ParseAndValidate" >> ParseAndValidate(self._run_seed, self._max_retries)


class CallModel(beam.PTransform):
    """PromptRequests -> (parsed, dead).

    Each attempt is its own RunInference stage (a Beam graph has no cycles), so a reply that
    fails to parse is asked again, with a seed derived from the attempt number, at most
    ``max_retries`` times. ``parsed`` holds ``(request, completion, value)``; ``dead`` holds
    DeadLetters carrying every attempt's reason.

    Args:
        handler: The RunInference ModelHandler.
        run_seed: The run seed (re-asks derive their sampling seed from it).
        max_retries: Re-asks after the first attempt.
        journal: Output directory whose ``_journal/`` logs every reply as it arrives, or None.
        logged: ``(journal key, Completion)`` pairs of an earlier run; a request found there is
            answered from the log instead of calling the model (used by ``--resume``).
        spread_first: Reshuffle the requests before the first attempt. Pass False when the input was
            already redistributed upstream (the generation job reshuffles the small elements before their
            prompts are rendered, so the prompts themselves never go through a shuffle); re-asks are always
            reshuffled.
        finish: A DoFn applied to each attempt's ``(request, completion, value)`` before the attempts are
            merged; ``parsed`` then holds its outputs. The generation job turns them into rows here, so where
            the attempts meet (a Flatten, which an in-memory runner holds whole) only rows are held, not
            prompts and raw replies.
    """

    def __init__(
        self,
        handler: ModelHandler,
        run_seed: int,
        max_retries: int,
        journal=None,
        logged=None,
        spread_first: bool = True,
        finish: beam.DoFn | None = None,
    ):
        super().__init__()
        self._spread_first = spread_first
        self._finish = finish
        self._handler = handler
        self._run_seed = run_seed
        self._max_retries = max_retries
        self._journal = journal
        self._logged = logged

    def expand(self, requests):
        parsed_parts, dead_parts = [], []
        pending = requests
        for attempt in range(self._max_retries + 1):
            parsed, pending, dead = pending | f"Attempt{attempt}" >> _Attempt(
                self._handler,
                self._run_seed,
                self._max_retries,
                self._journal,
                self._logged,
                reshuffle=attempt > 0 or self._spread_first,
            )
            if self._finish is not None:
                parsed = parsed | f"Finish{attempt}" >> beam.ParDo(self._finish)
            parsed_parts.append(parsed)
            dead_parts.append(dead)
        # The last attempt never yields retries: its ParseAndValidate sees attempt == max_retries.
        parsed = parsed_parts | "MergeParsed" >> beam.Flatten()
        dead = dead_parts | "MergeDead" >> beam.Flatten()
        return parsed, dead
