"""CallModel on the DirectRunner: bounded re-asks, dead letters carrying every attempt, journal replay."""

import json

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from tests.support.fakes import FakeHandler, valid_reply
from tests.support.helpers import prompt_requests
from transforms.elements import Completion, derive_seed
from transforms.inference import CallModel, ModelCalls
from transforms.resume import journal_key

RUN_SEED = 3


def _requests(n):
    return prompt_requests(n, "text-matching-long", "en", RUN_SEED, "call")


def test_a_reply_that_never_parses_runs_out_of_re_asks_and_is_dead_lettered_with_every_attempt():
    requests = _requests(2)
    handler = FakeHandler(lambda r: "not json" if r.element.element_id == "call-000" else valid_reply(r))
    with TestPipeline() as p:
        parsed, dead = p | beam.Create(requests) | CallModel(ModelCalls(handler, RUN_SEED, max_retries=2))
        assert_that(
            parsed | "ParsedIds" >> beam.Map(lambda t: (t[0].element.element_id, t[0].attempt)),
            equal_to([("call-001", 0)]),
            label="Parsed",
        )
        assert_that(
            dead | "DeadIds" >> beam.Map(lambda d: (d.element_id, d.attempts, len(d.failures), d.raw_text)),
            equal_to([("call-000", 3, 3, "not json")]),
            label="Dead",
        )


def test_a_reply_that_fails_once_is_asked_again_with_a_new_seed_and_kept():
    (request,) = _requests(1)

    def once(r):
        return valid_reply(r)[:-3] if r.attempt == 0 else valid_reply(r)

    with TestPipeline() as p:
        parsed, dead = p | beam.Create([request]) | CallModel(ModelCalls(FakeHandler(once), RUN_SEED, max_retries=1))
        assert_that(
            parsed | "Attempts" >> beam.Map(lambda t: (t[0].attempt, len(t[0].failures), t[0].sampling_seed)),
            equal_to([(1, 1, derive_seed(RUN_SEED, request.element.element_id, "model", 1))]),
            label="Parsed",
        )
        assert_that(dead, equal_to([]), label="Dead")
    assert derive_seed(RUN_SEED, request.element.element_id, "model", 1) != request.sampling_seed


def test_without_re_asks_a_failure_is_dead_at_once():
    with TestPipeline() as p:
        parsed, dead = p | beam.Create(_requests(1)) | CallModel(ModelCalls(FakeHandler(lambda r: "[]"), RUN_SEED, 0))
        assert_that(parsed, equal_to([]), label="Parsed")
        assert_that(dead | beam.Map(lambda d: d.attempts), equal_to([1]), label="Dead")


class _Refusing(FakeHandler):
    """A handler that must not be called: every request should be answered from the journal."""

    def run_inference(self, batch, model, inference_args=None):
        raise AssertionError(f"model called for {[r.element.element_id for r in batch]}")


def test_logged_replies_are_replayed_without_a_model_call():
    requests = _requests(3)
    logged = [
        (journal_key(r), Completion(text=json.dumps(json.loads(valid_reply(r))), model="logged-model"))
        for r in requests
    ]
    with TestPipeline() as p:
        log = p | "Logged" >> beam.Create(logged)
        parsed, dead = p | beam.Create(requests) | CallModel(ModelCalls(_Refusing(), RUN_SEED, 1, logged=log))
        assert_that(
            parsed | "Models" >> beam.Map(lambda t: (t[0].element.element_id, t[1].model)),
            equal_to([(r.element.element_id, "logged-model") for r in requests]),
            label="Parsed",
        )
        assert_that(dead, equal_to([]), label="Dead")


def test_a_logged_reply_answers_only_its_own_request():
    requests = _requests(2)
    other = requests[1]._replace(prompt=requests[1].prompt + " (a changed template)")
    logged = [(journal_key(r), Completion(text=valid_reply(r), model="logged-model")) for r in requests]
    with TestPipeline() as p:
        log = p | "Logged" >> beam.Create(logged)
        calls = ModelCalls(FakeHandler(model_name="live-model"), RUN_SEED, 0, logged=log)
        parsed, _ = p | beam.Create([requests[0], other]) | CallModel(calls)
        assert_that(
            parsed | "Models" >> beam.Map(lambda t: (t[0].element.element_id, t[1].model)),
            equal_to([("call-000", "logged-model"), ("call-001", "live-model")]),
        )
