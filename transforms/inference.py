"""CallModel: prompt requests -> RunInference -> ParseAndValidate, with bounded re-asks of failed parses."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.ml.inference.base import ModelHandler, RunInference

from transforms.parse import ParseAndValidate

__all__ = ["CallModel"]


class _Attempt(beam.PTransform):
    def __init__(self, handler: ModelHandler, run_seed: int, max_retries: int):
        super().__init__()
        self._handler = handler
        self._run_seed = run_seed
        self._max_retries = max_retries

    def expand(self, requests):
        return (
            requests
            # Break fusion so that model calls spread over all workers, whatever produced the requests.
            | "Reshuffle" >> beam.Reshuffle()
            | "RunInference" >> RunInference(self._handler)
            | "ParseAndValidate" >> ParseAndValidate(self._run_seed, self._max_retries)
        )


class CallModel(beam.PTransform):
    """PromptRequests -> (parsed, dead).

    Each attempt is its own RunInference stage (a Beam graph has no cycles), so a reply that
    fails to parse is asked again, with a seed derived from the attempt number, at most
    ``max_retries`` times. ``parsed`` holds ``(request, completion, value)``; ``dead`` holds
    DeadLetters carrying every attempt's reason.
    """

    def __init__(self, handler: ModelHandler, run_seed: int, max_retries: int):
        super().__init__()
        self._handler = handler
        self._run_seed = run_seed
        self._max_retries = max_retries

    def expand(self, requests):
        parsed_parts, dead_parts = [], []
        pending = requests
        for attempt in range(self._max_retries + 1):
            parsed, pending, dead = pending | f"Attempt{attempt}" >> _Attempt(
                self._handler, self._run_seed, self._max_retries
            )
            parsed_parts.append(parsed)
            dead_parts.append(dead)
        # The last attempt never yields retries: its ParseAndValidate sees attempt == max_retries.
        parsed = parsed_parts | "MergeParsed" >> beam.Flatten()
        dead = dead_parts | "MergeDead" >> beam.Flatten()
        return parsed, dead
