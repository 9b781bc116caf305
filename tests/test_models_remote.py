"""The remote-backend machinery against the local stand-in: one result per element, concurrency, retries, rate cap."""

import json
import threading

import apache_beam as beam
import pytest
from apache_beam.ml.inference.base import RunInference
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.utils import retry

from tests.support.helpers import prompt_requests
from tests.support.standins import Fault, StandIn, reply_for_schema
from transforms.models import remote
from transforms.models.openai_compat import OpenAICompatHandler, OpenAISettings
from transforms.models.remote import RemoteSettings, strip_schema


def _requests(n, category="text-matching-short"):
    return prompt_requests(n, category, "en", 42, "element")


def _handler(standin, **settings):
    settings.setdefault("model", "standin-model")
    return OpenAICompatHandler(RemoteSettings(**settings), OpenAISettings(standin.openai_base_url))


@pytest.fixture
def backoffs(monkeypatch):
    """Beam's retry backoff, recorded instead of slept."""
    slept = []
    monkeypatch.setattr(retry.Clock, "sleep", lambda self, seconds: slept.append(seconds))
    return slept


def _run(handler, batch):
    """One RunInference call the way Beam makes it (through the retrying run_inference), without throttling delays."""
    handler.throttler.throttle_delay_secs = 0
    return list(handler.run_inference(batch, handler.load_model()))


def _expected_text(request):
    """The reply the stand-in gives to ``request`` when no fault applies."""
    return reply_for_schema(json.loads(request.schema_json), request.prompt, request.sampling_seed)


@pytest.mark.parametrize("batch_size", [1, 4, 23, 32])
def test_n_inputs_give_n_results_each_its_own_for_every_batch_size(batch_size):
    requests = _requests(23)
    with StandIn(faults=[Fault("400", match="topic 7,")]) as standin:
        handler = _handler(standin, batch_size=batch_size, max_concurrent_requests=8)
        with beam.Pipeline() as p:
            results = (
                p
                | beam.Create(requests)
                | RunInference(handler)
                | beam.Map(lambda r: (r.example.element.element_id, r.inference.error is None, r.inference.text))
            )
            expected = [
                (r.element.element_id, "topic 7," not in r.prompt, "" if "topic 7," in r.prompt else _expected_text(r))
                for r in requests
            ]
            assert_that(results, equal_to(expected))
        # One request per element: never one request for a whole batch.
        assert len(standin.model_calls()) == 23
        assert {c.prompt for c in standin.model_calls()} == {r.prompt for r in requests}


def test_calls_of_a_batch_run_concurrently_up_to_the_cap():
    with StandIn(latency=0.3) as standin:
        handler = _handler(standin, batch_size=24, max_concurrent_requests=8)
        results = _run(handler, _requests(24))
    assert len(results) == 24 and all(r.inference.error is None for r in results)
    assert 4 <= standin.stats()["max_in_flight"] <= 8


def test_the_cap_holds_for_the_whole_process_across_handlers_and_threads():
    settings = dict(batch_size=16, max_concurrent_requests=6)
    with StandIn(latency=0.3) as standin:
        handlers = [_handler(standin, **settings) for _ in range(3)]
        outputs = []
        threads = [threading.Thread(target=lambda h=h: outputs.append(_run(h, _requests(16)))) for h in handlers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(len(o) for o in outputs) == [16, 16, 16]
    assert standin.stats()["max_in_flight"] <= 6


def test_a_retry_sends_only_the_failed_calls_again(backoffs):
    requests = _requests(10)
    flaky = {r.prompt for r in requests[::3]}
    with StandIn(
        faults=[Fault("429", match=lambda c: c.prompt in flaky, times=1), Fault("500", match="topic 1,", times=1)]
    ) as standin:
        results = _run(_handler(standin, batch_size=10), requests)
    assert [r.example for r in results] == requests
    assert all(r.inference.error is None for r in results), [r.inference.error for r in results]
    calls = standin.model_calls()
    assert len(calls) == 10 + len(flaky) + 1  # the answered ones were not sent again
    assert len(backoffs) == 1  # one round of Beam's backoff for the whole batch


def test_a_400_is_not_retried_and_keeps_the_service_message(backoffs):
    requests = _requests(5)
    with StandIn(faults=[Fault("400", match="topic 2,")]) as standin:
        results = _run(_handler(standin), requests)
    bad = results[2].inference
    assert bad.error and "invalid argument" in bad.error and "400" in bad.error and not bad.retryable
    assert all(r.inference.error is None for i, r in enumerate(results) if i != 2)
    assert len(standin.model_calls()) == 5 and backoffs == []


def test_retries_end_after_max_request_retries_with_a_retryable_error(backoffs):
    with StandIn(faults=[Fault("503", match="topic 0,")]) as standin:
        results = _run(_handler(standin, max_request_retries=2), _requests(3))
    failed = results[0].inference
    assert failed.error and "503" in failed.error and failed.retryable
    assert [r.inference.error for r in results[1:]] == [None, None]
    assert sum(1 for c in standin.model_calls() if "topic 0," in c.prompt) == 3
    assert len(backoffs) == 2


def test_timeouts_and_dropped_connections_are_retried(backoffs):
    faults = [Fault("hang", match="topic 0,", times=1), Fault("drop", match="topic 1,", times=1)]
    with StandIn(faults=faults, hang_seconds=5) as standin:
        results = _run(_handler(standin, request_timeout=0.5), _requests(3))
    assert [r.inference.error for r in results] == [None, None, None]
    assert len(backoffs) == 1


def test_requests_per_minute_spaces_call_starts(monkeypatch):
    class FakeClock:
        now = 100.0
        starts = []

        def monotonic(self):
            return self.now

        def sleep(self, seconds):
            self.now += seconds

    clock = FakeClock()
    monkeypatch.setattr(remote, "time", clock)
    limiter = remote._RateLimiter(per_minute=120)  # one start every 0.5 s
    for _ in range(5):
        limiter.wait()
        clock.starts.append(clock.now)
    assert clock.starts == [100.0, 100.5, 101.0, 101.5, 102.0]


def test_strip_schema_keeps_structure_and_drops_length_bounds():
    schema = {
        "type": "object",
        "properties": {"minLength": {"type": "string", "minLength": 1, "maxLength": 4000}},
        "required": ["minLength"],
        "additionalProperties": False,
    }
    assert strip_schema(schema) == {
        "type": "object",
        "properties": {"minLength": {"type": "string"}},
        "required": ["minLength"],
        "additionalProperties": False,
    }
