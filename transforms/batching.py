"""Model calls in fixed batches formed from element ids by a seeded hash, so batched decoding stays reproducible.

A backend that decodes several prompts together (the embedded model with ``--llama-parallel-sequences`` above 1)
gives a reply that depends on which prompts share its call. ``FixedBatches`` makes that set a function of the run
seed and the element ids only: each request goes to one of a fixed number of groups by ``sha256(run seed, element
id)``, each group is sorted by id and cut into batches of ``size``. The number of groups follows the number of
requests of the stage (a count, not the runner's bundling), so the same requests form the same batches on every
runner and with any number of workers. ``InferInFixedBatches`` then runs RunInference on whole batches (one batch
per model call) and hands back one ``PredictionResult`` per request, exactly as RunInference on the requests does.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Iterable, Sequence

import apache_beam as beam
from apache_beam.ml.inference.base import ModelHandler, PredictionResult, RunInference

from transforms.elements import PromptRequest

__all__ = ["FixedBatches", "InferInFixedBatches", "batch_group", "fixed_batch_size"]

_LOGGER = logging.getLogger(__name__)

BATCHES_PER_GROUP = 8  # a group ends in at most one short batch: at most 1 in 8 batches is short


def fixed_batch_size(handler: ModelHandler) -> int:
    """The batch size a handler asks its requests to be grouped in (``fixed_batch_size()``), or 0 for none."""
    size = getattr(handler, "fixed_batch_size", None)
    return int(size()) if callable(size) else 0


def batch_group(run_seed: int, element_id: str, groups: int) -> int:
    """The group of one element: ``sha256(run seed, element id)`` modulo ``groups`` (never Python's ``hash()``)."""
    digest = hashlib.sha256(f"{run_seed}\x1f{element_id}\x1fbatch".encode()).digest()
    return int.from_bytes(digest[:8], "big") % max(1, groups)


def _order(request: PromptRequest) -> tuple:
    return request.element.element_id, request.attempt, request.sampling_seed


def _keyed(request: PromptRequest, run_seed: int, size: int, count: int):
    groups = max(1, math.ceil(count / (size * BATCHES_PER_GROUP)))
    return batch_group(run_seed, request.element.element_id, groups), request


def _chunks(keyed, size: int) -> Iterable[tuple]:
    _, requests = keyed
    ordered = sorted(requests, key=_order)
    for start in range(0, len(ordered), size):
        yield tuple(ordered[start : start + size])


class FixedBatches(beam.PTransform):
    """PromptRequests -> tuples of at most ``size`` requests; which requests share a tuple depends only on the run
    seed and the set of element ids."""

    def __init__(self, run_seed: int, size: int):
        super().__init__()
        if size < 1:
            raise ValueError(f"batch size must be at least 1, got {size}")
        self._run_seed = run_seed
        self._size = size

    def expand(self, requests):
        count = requests | "CountRequests" >> beam.combiners.Count.Globally()
        return (
            requests
            | "KeyByGroup" >> beam.Map(_keyed, self._run_seed, self._size, count=beam.pvalue.AsSingleton(count))
            | "GroupRequests" >> beam.GroupByKey()
            | "CutBatches" >> beam.FlatMap(_chunks, self._size)
            | "SpreadBatches" >> beam.Reshuffle()  # small groups would otherwise leave workers idle
        )


class _BatchHandler(ModelHandler):
    """Wraps a handler so that one example is one fixed batch of requests, decoded in one call of the inner handler.

    Its inference is the inner handler's PredictionResults for that batch, in order.
    """

    def __init__(self, inner: ModelHandler):
        super().__init__()
        self._inner = inner

    def load_model(self):
        return self._inner.load_model()

    def run_inference(self, batch: Sequence[tuple], model, inference_args: dict | None = None):
        return [PredictionResult(b, list(self._inner.run_inference(list(b), model, inference_args))) for b in batch]

    def get_num_bytes(self, batch: Sequence[tuple]) -> int:
        return sum(self._inner.get_num_bytes(list(b)) for b in batch)

    def get_metrics_namespace(self) -> str:
        return self._inner.get_metrics_namespace()

    def batch_elements_kwargs(self) -> dict:
        return {"min_batch_size": 1, "max_batch_size": 1}  # one fixed batch per call, never two merged

    def share_model_across_processes(self) -> bool:
        return self._inner.share_model_across_processes()

    def validate_inference_args(self, inference_args) -> None:
        self._inner.validate_inference_args(inference_args)


def _unbatch(result: PredictionResult) -> Iterable[PredictionResult]:
    yield from result.inference


class InferInFixedBatches(beam.PTransform):
    """PromptRequests -> one PredictionResult each, like ``RunInference(handler)``.

    When the handler asks for fixed batches (``fixed_batch_size()`` above 1), the requests are grouped by
    ``FixedBatches`` and each batch is one model call; otherwise this is plain RunInference.
    """

    def __init__(self, handler: ModelHandler, run_seed: int):
        super().__init__()
        self._handler = handler
        self._run_seed = run_seed

    def expand(self, requests):
        size = fixed_batch_size(self._handler)
        if size <= 1:
            return requests | "RunInference" >> RunInference(self._handler)
        return (
            requests
            | "FixedBatches" >> FixedBatches(self._run_seed, size)
            | "RunInference" >> RunInference(_BatchHandler(self._handler))
            | "Unbatch" >> beam.FlatMap(_unbatch)
        )
