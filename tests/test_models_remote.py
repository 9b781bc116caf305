"""The remote-backend machinery against the local stand-in: one result per element, concurrency, per-call retries."""

import json
import threading
import time

import apache_beam as beam
import pytest
from apache_beam.ml.inference.base import RunInference
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

from tests.support.helpers import prompt_requests
from tests.support.standins import Fault, FaultCycle, StandIn, reply_for_schema
from transforms.models import remote
from transforms.models.call_pool import AIMDLimit
from transforms.models.openai_compat import OpenAICompatHandler, OpenAISettings
from transforms.models.remote import RemoteSettings, strip_schema


def _requests(n, category="text-matching-short"):
    return prompt_requests(n, category, "en", 42, "element")


def _handler(standin, **settings):
    settings.setdefault("model", "standin-model")
    settings.setdefault("initial_backoff", 0.01)
    return OpenAICompatHandler(RemoteSettings(**settings), OpenAISettings(standin.openai_base_url))


@pytest.fixture(autouse=True)
def fresh_pools(monkeypatch):
    """Each test gets its own process-wide call pools (their adaptive limits would carry over otherwise)."""
    monkeypatch.setattr(remote, "_SHARED", {})


def _calls_of(standin, marker):
    return [c for c in standin.model_calls() if marker in c.prompt]


def _wait_for(condition, what, seconds=20.0):
    """Poll until ``condition()`` holds; a bound against hanging, not a timing assertion."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.01)


def _run(handler, batch):
    """One RunInference call the way Beam makes it (through run_inference), without client-side throttling.

    With only a few calls, one failure is enough for Beam's throttler to hold a retry back for seconds (it
    counts accepted against attempted calls); the tests here are about what happens without it.
    """
    handler.throttler.throttle_delay_secs = 0
    connection = handler.load_model()
    connection.shared.pool.throttler.hold_back = lambda now_ms: False
    return list(handler.run_inference(batch, connection))


def _expected_text(request):
    """The reply the stand-in gives to ``request`` when no fault applies."""
    return reply_for_schema(json.loads(request.schema_json), request.prompt, request.sampling_seed)


@pytest.mark.parametrize("batch_size,bundles", [(1, 1), (4, 3), (23, 1), (32, 2)])
def test_n_inputs_give_n_results_each_its_own_for_every_batch_size(batch_size, bundles):
    requests = _requests(23)
    options = PipelineOptions(["--direct_running_mode=multi_threading", f"--direct_num_workers={bundles}"])
    with StandIn(faults=[Fault("400", match="topic 7,")]) as standin:
        handler = _handler(standin, batch_size=batch_size, max_concurrent_requests=8)
        with beam.Pipeline(options=options) as p:
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


def test_a_retry_sends_only_the_failed_call_again():
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
    assert sorted(c.prompt_calls for c in calls).count(1) == len(flaky) + 1


def test_a_retry_is_sent_while_the_other_calls_of_its_batch_are_still_out():
    # Every call but one is held at the stand-in until the test lets it go; the one gets a 429 first. Its retry
    # must be sent and answered while the others are still held: it does not wait for its batch.
    release = threading.Event()
    requests = _requests(6)
    with StandIn(
        faults=[Fault("429", match="topic 0,", times=1)],
        latency=lambda c: 0 if "topic 0," in c.prompt else (release.wait(20) and 0),
    ) as standin:
        handler = _handler(standin, batch_size=6, max_concurrent_requests=8, adaptive_concurrency=False)
        results = []
        worker = threading.Thread(target=lambda: results.extend(_run(handler, requests)))
        worker.start()
        try:
            _wait_for(lambda: any(c.status == 200 for c in _calls_of(standin, "topic 0,")), "the retry answered")
            held = [c for c in standin.model_calls() if "topic 0," not in c.prompt]
            assert not any(c.finished for c in held)
        finally:
            release.set()
            worker.join()
    assert [r.inference.error for r in results] == [None] * 6
    assert [c.fault for c in _calls_of(standin, "topic 0,")] == ["429", None]
    assert len(standin.model_calls()) == 7


def test_a_slow_call_does_not_hold_back_other_batches():
    # Two bundles share the pool; one call of the first is held. The second bundle's batch, and the rest of the
    # first batch, are answered through the other slot while it is held.
    release = threading.Event()
    first, second = _requests(2), prompt_requests(5, "text-matching-short", "en", 42, "other")
    with StandIn(
        latency=lambda c: release.wait(20) and 0 if "topic 0," in c.prompt and c.seed == first[0].sampling_seed else 0
    ) as standin:
        handler = _handler(standin, max_concurrent_requests=2, adaptive_concurrency=False)
        out = {}
        threads = [
            threading.Thread(target=lambda name=name, batch=batch: out.update({name: _run(handler, batch)}))
            for name, batch in (("first", first), ("second", second))
        ]
        for t in threads:
            t.start()
        try:
            threads[1].join(20)
            _wait_for(lambda: len([c for c in standin.model_calls() if c.finished]) == 6, "all but the held answered")
            assert "second" in out and "first" not in out
        finally:
            release.set()
            for t in threads:
                t.join()
    assert [r.example for r in out["first"]] == first and [r.example for r in out["second"]] == second
    assert all(r.inference.error is None for r in out["first"] + out["second"])


def test_retry_after_is_honoured():
    requests = _requests(4)
    with StandIn(faults=[Fault("429", match="topic 0,", times=1, retry_after=1)]) as standin:
        results = _run(_handler(standin), requests)
    assert all(r.inference.error is None for r in results)
    refused, retried = _calls_of(standin, "topic 0,")
    assert refused.status == 429 and refused.retry_after == 1 and retried.status == 200
    # Backoff alone would have waited about 0.01 s; the retry came no earlier than the service asked.
    assert retried.started - refused.finished >= 1.0
    assert len(standin.model_calls()) == 5


def test_a_400_is_not_retried_and_keeps_the_service_message():
    requests = _requests(5)
    with StandIn(faults=[Fault("400", match="topic 2,")]) as standin:
        results = _run(_handler(standin), requests)
    bad = results[2].inference
    assert bad.error and "invalid argument" in bad.error and "400" in bad.error and not bad.retryable
    assert all(r.inference.error is None for i, r in enumerate(results) if i != 2)
    assert len(standin.model_calls()) == 5


def test_retries_end_after_max_request_retries_with_a_retryable_error():
    with StandIn(faults=[Fault("503", match="topic 0,")]) as standin:
        results = _run(_handler(standin, max_request_retries=2), _requests(3))
    failed = results[0].inference
    assert failed.error and "503" in failed.error and failed.retryable
    assert [r.inference.error for r in results[1:]] == [None, None]
    assert len(_calls_of(standin, "topic 0,")) == 3


def test_timeouts_and_dropped_connections_are_retried():
    faults = [Fault("hang", match="topic 0,", times=1), Fault("drop", match="topic 1,", times=1)]
    with StandIn(faults=faults, hang_seconds=5) as standin:
        results = _run(_handler(standin, request_timeout=0.5), _requests(3))
    assert [r.inference.error for r in results] == [None, None, None]
    assert len(standin.model_calls()) == 5


def test_every_element_gets_exactly_one_result_under_mixed_faults():
    cycle = FaultCycle(["429", "500", "drop", None, "400", "503", None], always=("400",))
    requests = _requests(28)
    with StandIn(faults=cycle.rules) as standin:
        results = _run(_handler(standin, batch_size=28, max_concurrent_requests=4), requests)
    assert [r.example for r in results] == requests
    bad = cycle.prompts("400")
    assert {r.example.prompt for r in results if r.inference.error} == bad
    assert all(not r.inference.retryable for r in results if r.inference.error)
    assert sum(1 for c in standin.model_calls() if c.prompt in bad) == len(bad)  # a 400 is never retried


def test_throttling_answers_shrink_the_calls_in_flight():
    # The first three calls are refused with a 429: the pool's limit drops below where it started.
    with StandIn(faults=[Fault("429", times=3, per_prompt=False)]) as standin:
        handler = _handler(standin, batch_size=20, max_concurrent_requests=16)
        connection = handler.load_model()
        start = connection.shared.pool.limit.limit
        results = list(handler.run_inference(_requests(20), connection))
    assert all(r.inference.error is None for r in results)
    assert connection.shared.pool.limit.limit < start
    assert standin.stats()["max_in_flight"] <= start


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


def test_aimd_grows_with_successes_shrinks_on_throttling_and_stays_under_the_ceiling():
    limit = AIMDLimit(ceiling=20, initial=4, increase=1.0, decrease=0.5)
    assert limit.limit == 4
    for _ in range(4):  # slow start: one slot per success, a doubling per window
        limit.on_success(was_limited=True)
    assert limit.limit == 8
    limit.on_success(was_limited=False)  # a call that did not find the limit reached teaches nothing
    assert limit.limit == 8
    epoch = limit.epoch
    limit.on_throttled(epoch)
    assert limit.limit == 4
    limit.on_throttled(epoch)  # same congestion (sent before the decrease): no second decrease
    assert limit.limit == 4
    for _ in range(4):  # additive increase: about one slot per window of successes
        limit.on_success(was_limited=True)
    assert limit.limit == 4
    limit.on_success(was_limited=True)
    assert limit.limit == 5
    for _ in range(1000):
        limit.on_success(was_limited=True)
    assert limit.limit == 20  # never above the ceiling
    for _ in range(50):
        limit.on_throttled(limit.epoch)
    assert limit.limit == 1  # never below one


def test_fixed_concurrency_stays_at_the_ceiling():
    limit = AIMDLimit(ceiling=12, adaptive=False)
    limit.on_throttled(limit.epoch)
    limit.on_success(was_limited=True)
    assert limit.limit == 12


def test_retry_after_header_forms():
    class Response:
        def __init__(self, **headers):
            self.headers = {k.replace("_", "-"): v for k, v in headers.items()}

    assert remote.retry_after_seconds(Response(retry_after="3")) == 3.0
    assert remote.retry_after_seconds(Response(retry_after_ms="250", retry_after="1")) == 0.25
    assert 0 <= remote.retry_after_seconds(Response(retry_after="Wed, 21 Oct 2015 07:28:00 GMT")) < 1
    assert remote.retry_after_seconds(Response(retry_after="soon")) is None
    assert remote.retry_after_seconds(Response()) is None
    assert remote.retry_after_seconds(None) is None


def test_direct_runner_runs_several_bundles_unless_told_otherwise():
    assert remote.direct_runner_args([]) == ["--direct_running_mode=multi_threading", "--direct_num_workers=4"]
    assert remote.direct_runner_args([], 128) == ["--direct_running_mode=multi_threading", "--direct_num_workers=16"]
    assert [remote.direct_bundles(n) for n in (1, 32, 33, 64, 100, 128, 1000)] == [4, 4, 5, 8, 13, 16, 16]
    assert remote.direct_runner_args(["--direct_num_workers=1"]) == ["--direct_num_workers=1"]
    assert remote.direct_runner_args(["--runner", "DataflowRunner"]) == ["--runner", "DataflowRunner"]


def test_request_concurrency_flag_is_validated(tmp_path, capsys):
    from pipelines import generate
    from pipelines.options import parse_args, to_config

    args = ["--output", str(tmp_path / "o"), "--model", "openai:m", "--api-base", "http://127.0.0.1:1/v1"]
    assert to_config(parse_args(args)[0]).model.settings.remote.adaptive_concurrency is True
    fixed = to_config(parse_args([*args, "--request-concurrency", "fixed"])[0]).model.settings.remote
    assert fixed.adaptive_concurrency is False and fixed.max_concurrent_requests == 32
    try:
        code = generate.run([*args, "--request-concurrency", "sometimes"])
    except SystemExit as exit_info:  # argparse's own exit on a bad choice
        code = exit_info.code
    assert code == 2
    err = capsys.readouterr().err
    assert "--request-concurrency" in err and "adaptive" in err and "fixed" in err
    assert not (tmp_path / "o").exists()


def test_the_client_side_throttler_holds_back_attempts_while_most_calls_fail(monkeypatch):
    from transforms.models.call_pool import _Throttler

    throttler = _Throttler(window_ms=1_000, bucket_ms=1_000, overload_ratio=2, namespace="embedgen_test")
    now = 1_000_000.0
    assert not throttler.hold_back(now)  # nothing known yet
    for _ in range(50):
        throttler.record(now, accepted=True)
    assert sum(throttler.hold_back(now) for _ in range(50)) == 0  # healthy: never held back
    for _ in range(200):
        throttler.record(now, accepted=False)
    assert sum(throttler.hold_back(now) for _ in range(100)) > 50  # 50 of 250 accepted: mostly held back


def test_standin_quota_answers_429_with_retry_after_beyond_its_tokens():
    requests = _requests(5)
    with StandIn(quota_rate=0.001, quota_burst=3) as standin:  # three tokens, then none for the test's length
        results = _run(_handler(standin, max_request_retries=0, adaptive_concurrency=False), requests)
    calls = standin.model_calls()
    assert sorted(c.fault or "ok" for c in calls) == ["ok", "ok", "ok", "quota", "quota"]
    assert all(c.status == 429 and c.retry_after >= 1 for c in calls if c.fault == "quota")
    assert sum(1 for r in results if r.inference.error and "429" in r.inference.error) == 2


def test_standin_latency_spread_keeps_the_mean_and_is_reproducible():
    from tests.support.standins import Call

    standin = StandIn(latency=0.5, latency_spread=1.0)
    calls = [Call("openai", "/", "m", f"prompt {i}", i, None, {}, {}) for i in range(4000)]
    delays = [standin._delay(c) for c in calls]
    assert abs(sum(delays) / len(delays) - 0.5) < 0.05
    assert max(delays) > 4 * 0.5 and min(delays) < 0.5 / 4  # spread, not fixed
    assert delays == [standin._delay(c) for c in calls]


def test_slow_start_fills_more_slots_than_it_started_with():
    # Fixed latency: every round of calls ends together. Answered rounds must raise the limit past its start of 8
    # (threads are started as the limit grows), up to the ceiling and never beyond it.
    with StandIn(latency=0.2) as standin:
        handler = _handler(standin, batch_size=64, max_concurrent_requests=16)
        results = _run(handler, _requests(64))
    assert all(r.inference.error is None for r in results)
    calls = standin.model_calls()
    first_answer = min(c.finished for c in calls)
    assert sum(1 for c in calls if c.started < first_answer) == 8  # the first round: the initial limit
    assert standin.stats()["max_in_flight"] == 16
