"""FixedBatches / InferInFixedBatches: batches formed from element ids by a seeded hash, one result per request."""

import json

import apache_beam as beam
import pytest
from apache_beam.ml.inference.base import PredictionResult
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from tests.support.fakes import FakeHandler
from transforms.batching import BATCHES_PER_GROUP, FixedBatches, InferInFixedBatches, batch_group, fixed_batch_size
from transforms.elements import Completion, Element, PromptRequest


def prompt_requests(n: int) -> list:
    return [
        PromptRequest(Element(f"element-{i:03d}", "monolingual-triplet", "generate"), f"prompt {i}", "t", "", "{}", i)
        for i in range(n)
    ]


class _BatchRecordingHandler(FakeHandler):
    """Replies with the ids of the requests that shared the call, and asks for fixed batches of ``size``."""

    def __init__(self, size: int):
        super().__init__()
        self._size = size

    def fixed_batch_size(self) -> int:
        return self._size

    def run_inference(self, batch, model, inference_args=None):
        mates = json.dumps(sorted(r.element.element_id for r in batch))
        return [PredictionResult(r, Completion(text=mates, model="fake"), "fake") for r in batch]


def _mates(requests, handler, tmp_path, run_seed=3) -> dict:
    """element id -> (its call's element ids, how many results it got), from one pipeline run."""
    out = str(tmp_path / f"mates-{len(list(tmp_path.iterdir()))}")
    with TestPipeline() as p:
        results = p | beam.Create(requests) | InferInFixedBatches(handler, run_seed)
        (
            results
            | beam.Map(lambda r: json.dumps([r.example.element.element_id, r.inference.text]))
            | beam.io.WriteToText(out, shard_name_template="")
        )
    got = {}
    with open(out) as lines:
        for line in lines:
            element_id, mates = json.loads(line)
            got[element_id] = (mates, got.get(element_id, (None, 0))[1] + 1)
    return got


def test_each_request_gets_one_result_and_its_batch_mates_do_not_depend_on_input_order(tmp_path):
    requests = prompt_requests(50)
    first = _mates(requests, _BatchRecordingHandler(4), tmp_path)
    again = _mates(list(reversed(requests)), _BatchRecordingHandler(4), tmp_path)
    assert sorted(first) == sorted(r.element.element_id for r in requests)
    assert all(count == 1 for _, count in first.values())
    assert first == again
    batches = {text for text, _ in first.values()}
    sizes = sorted(len(json.loads(b)) for b in batches)
    assert max(sizes) == 4 and sum(sizes) == 50
    groups = -(-50 // (4 * BATCHES_PER_GROUP))
    assert sum(s < 4 for s in sizes) <= groups  # at most one short batch per group
    for text in batches:  # a batch never mixes groups
        ids = json.loads(text)
        assert len({batch_group(3, i, groups) for i in ids}) == 1


def test_another_run_seed_forms_other_batches(tmp_path):
    requests = prompt_requests(50)
    handler = _BatchRecordingHandler(4)
    assert _mates(requests, handler, tmp_path, run_seed=3) != _mates(requests, handler, tmp_path, run_seed=4)


def test_without_a_fixed_batch_size_it_is_plain_run_inference():
    requests = prompt_requests(5)
    assert fixed_batch_size(FakeHandler()) == 0
    with TestPipeline() as p:
        results = p | beam.Create(requests) | InferInFixedBatches(FakeHandler(), 3)
        assert_that(
            results | beam.Map(lambda r: r.example.element.element_id),
            equal_to([r.element.element_id for r in requests]),
        )


def test_fixed_batches_are_sorted_by_id_and_cut_to_size():
    requests = prompt_requests(7)  # 7 requests: one group
    with TestPipeline() as p:
        batches = p | beam.Create(requests) | FixedBatches(3, 3)
        assert_that(
            batches | beam.Map(lambda b: tuple(r.element.element_id for r in b)),
            equal_to(
                [
                    ("element-000", "element-001", "element-002"),
                    ("element-003", "element-004", "element-005"),
                    ("element-006",),
                ]
            ),
        )


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        FixedBatches(1, 0)
