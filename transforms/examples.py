"""GenerateExamples: rendered prompts -> example rows (model calls with bounded re-asks, each reply a row)."""

from __future__ import annotations

import apache_beam as beam

from transforms import metrics
from transforms.inference import CallModel, ModelCalls
from transforms.records import example_row, row_language

__all__ = ["GenerateExamples", "ToRow"]


class ToRow(beam.DoFn):
    """(request, completion, outputs) -> output row, counted by category, language and tokens."""

    def __init__(self, run_seed: int):
        self._run_seed = run_seed

    def setup(self):
        self._counters = metrics.Counters()

    def process(self, parsed):
        request, completion, outputs = parsed
        row = example_row(request, completion, outputs, self._run_seed)
        self._counters.inc(metrics.WRITTEN, row["category"])
        self._counters.inc(
            metrics.ROWS_BY_LANGUAGE, row["category"], row_language(dict(request.element.attributes), row["category"])
        )
        self._counters.inc(metrics.TOKENS, "prompt", n=completion.prompt_tokens)
        self._counters.inc(metrics.TOKENS, "completion", n=completion.completion_tokens)
        yield row


class GenerateExamples(CallModel):
    """PromptRequests -> (example rows, dead letters).

    The model calls of CallModel (re-asks, journal, replay) with rows built inside each attempt, so only rows
    meet where the attempts are merged. The input must already be spread over the workers (the generation job
    reshuffles the small elements before their prompts are rendered). Its steps keep CallModel's labels
    (``Attempt<n>/...``), so the job graph is the one it always was.
    """

    def __init__(self, calls: ModelCalls):
        super().__init__(calls, spread_first=False, finish=ToRow(calls.run_seed))
