import json

import apache_beam as beam
import pytest
from apache_beam.ml.inference.base import PredictionResult
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from transforms.elements import STAGE_BRAINSTORM, Completion, Element
from transforms.parse import ParseAndValidate, ParseFailure, extract_json, validate
from transforms.render import render

VALID = {"user_query": "q", "positive_document": "p", "hard_negative_document": "n"}


def _request(category="text-retrieval", stage="generate", element_id="e1", attempt=0):
    attributes = {
        "text-retrieval": (
            ("query_type", "common"),
            ("query_length", "5 to 15 words"),
            ("difficulty", "college"),
            ("clarity", "clear"),
            ("num_words", "50"),
            ("language", "en"),
        ),
    }.get(category, ())
    element = Element(
        element_id, category, stage, "Given a claim, find evidence." if stage == "generate" else None, attributes
    )
    return render(element, run_seed=1)._replace(attempt=attempt)


@pytest.mark.parametrize(
    "text,expected",
    [
        (json.dumps(VALID), VALID),
        ("```json\n" + json.dumps(VALID) + "\n```", VALID),
        ("Here you go:\n```\n" + json.dumps(VALID) + "\n```\nEnjoy.", VALID),
        ("Sure! " + json.dumps(VALID) + " Hope it helps", VALID),
        ('["a", "b"]', ["a", "b"]),
    ],
)
def test_extract_json_accepts_fenced_and_prefixed(text, expected):
    assert extract_json(text) == expected


@pytest.mark.parametrize(
    "text,finish,reason",
    [
        ("", "stop", "empty_reply"),
        ("   \n", "stop", "empty_reply"),
        ('{"user_query": "q", "positive_document": "p', "length", "truncated_json"),
        ('{"user_query": "q", "positive_document": "p', "stop", "truncated_json"),
        ('```json\n{"a": [1, 2\n```', "stop", "truncated_json"),
        ("I cannot help with that.", "stop", "not_json"),
        ("{'user_query': 'q'}", "stop", "not_json"),  # Python literal, not JSON: never evaluated
        ("{" * 100000, "stop", "not_json"),
        ("[" * 100000, "stop", "not_json"),  # nested too deeply: refused, never a crash
    ],
)
def test_extract_json_failures(text, finish, reason):
    with pytest.raises(ParseFailure) as info:
        extract_json(text, finish)
    assert info.value.reason == reason


def test_validate_example():
    request = _request()
    assert validate(request, {**VALID, "extra": 1}) == VALID
    with pytest.raises(ParseFailure, match="missing_keys"):
        validate(request, {"user_query": "q"})
    with pytest.raises(ParseFailure, match="empty_field"):
        validate(request, {**VALID, "label": 1, "user_query": "  "})
    with pytest.raises(ParseFailure, match="empty_field"):
        validate(request, {**VALID, "user_query": 3})
    with pytest.raises(ParseFailure, match="wrong_type"):
        validate(request, [VALID])
    with pytest.raises(ParseFailure, match="invalid_text"):
        validate(request, {**VALID, "user_query": "\ud800"})


def test_validate_brainstorm():
    request = _request(stage=STAGE_BRAINSTORM)
    assert validate(request, [" Given a, find b. ", "", 3, "Given c"]) == ["Given a, find b.", "Given c"]
    assert validate(request, {"tasks": ["Given x"]}) == ["Given x"]
    with pytest.raises(ParseFailure, match="no_tasks"):
        validate(request, ["", " "])
    with pytest.raises(ParseFailure, match="wrong_type"):
        validate(request, "Given x")


def _result(text, element_id="e1", attempt=0, **completion):
    return PredictionResult(
        _request(element_id=element_id, attempt=attempt), Completion(text=text, model="m", **completion)
    )


def test_parse_and_validate_routes_rows_retries_and_dead_letters():
    cases = [
        _result(json.dumps(VALID), "ok"),
        _result("```json\n" + json.dumps(VALID) + "\n```", "fenced"),
        _result('{"user_query": "q"', "truncated", finish_reason="length"),
        _result("no json here", "nonjson"),
        _result(json.dumps({"user_query": "q"}), "missing"),
        _result("nonjson again", "last", attempt=1),
        _result("", "error400", error="HTTP 400: bad request", finish_reason="error"),
        _result("", "error503", error="HTTP 503", retryable=True, finish_reason="error"),
    ]
    with TestPipeline() as p:
        parsed, retry, dead = p | beam.Create(cases) | ParseAndValidate(run_seed=1, max_retries=1)
        assert_that(
            parsed | "ParsedIds" >> beam.Map(lambda t: (t[0].element.element_id, t[2])),
            equal_to([("ok", VALID), ("fenced", VALID)]),
            label="parsed",
        )
        assert_that(
            retry | "RetryIds" >> beam.Map(lambda r: (r.element.element_id, r.attempt, len(r.failures))),
            equal_to([("truncated", 1, 1), ("nonjson", 1, 1), ("missing", 1, 1), ("error503", 1, 1)]),
            label="retry",
        )
        assert_that(
            dead | "DeadIds" >> beam.Map(lambda d: (d.element_id, d.reason, d.attempts, bool(d.prompt))),
            equal_to([("last", "not_json", 2, True), ("error400", "model_error", 1, True)]),
            label="dead",
        )


def test_retried_request_gets_a_new_seed():
    with TestPipeline() as p:
        _, retry, _ = p | beam.Create([_result("nope", "x")]) | ParseAndValidate(run_seed=1, max_retries=2)
        original = _request(element_id="x").sampling_seed
        assert_that(retry | beam.Map(lambda r: r.sampling_seed != original), equal_to([True]))


def _sts_request():
    attributes = (
        ("unit", "sentence"),
        ("difficulty", "college"),
        ("high_score", "4.5"),
        ("low_score", "2.5"),
        ("language", "en"),
    )
    return render(Element("sts", "monolingual-triplet", "generate", None, attributes), run_seed=1)


STS = {"S1": "The cat sleeps on the mat.", "S2": "A cat is asleep on a rug.", "S3": "The dog runs in the park."}


@pytest.mark.parametrize(
    "reply,reason",
    [
        # The field names echoed back, as a tiny model does ({"S1": "S1", "S2": "S2", "S3": "S3"}).
        ({"S1": "S1", "S2": "S2", "S3": "S3"}, "echoed_field"),
        ({**STS, "S3": "s3."}, "echoed_field"),
        ({**STS, "S2": "S1"}, "echoed_field"),  # another field's name is an echo too
        ({**STS, "S1": "S1: S1: S1: S2: S1: S3:"}, "echoed_field"),  # nothing but field names
        # Placeholder junk instead of text.
        ({**STS, "S1": "T1.4"}, "placeholder"),
        ({**STS, "S2": "..."}, "placeholder"),
        ({**STS, "S2": "…"}, "placeholder"),
        ({**STS, "S3": "<text>"}, "placeholder"),
        ({**STS, "S3": "{sentence}"}, "placeholder"),
        ({**STS, "S1": "string"}, "placeholder"),
        ({**STS, "S1": "Lorem ipsum"}, "placeholder"),
        # Fields that must differ, equal (after case and punctuation).
        ({**STS, "S3": STS["S2"]}, "same_fields"),
        ({**STS, "S2": STS["S1"].upper().rstrip(".")}, "same_fields"),
    ],
)
def test_degenerate_sts_replies_fail_validation(reply, reason):
    with pytest.raises(ParseFailure) as info:
        validate(_sts_request(), reply)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    "reply,reason",
    [
        ({**VALID, "positive_document": "user_query"}, "echoed_field"),
        ({**VALID, "hard_negative_document": "positive document"}, "echoed_field"),
        ({**VALID, "user_query": "[query]"}, "placeholder"),
        ({**VALID, "positive_document": "q", "hard_negative_document": "n"}, "same_fields"),
        # The document is the query copied (repeated, or with a word added).
        (
            {**VALID, "user_query": "how do plants make food", "positive_document": "How do plants make food? Yes."},
            "copied_field",
        ),
        (
            {
                **VALID,
                "user_query": "best hiking boots for winter",
                "hard_negative_document": "best hiking boots for winter best hiking boots for winter",
            },
            "copied_field",
        ),
    ],
)
def test_degenerate_retrieval_replies_fail_validation(reply, reason):
    with pytest.raises(ParseFailure) as info:
        validate(_request(), reply)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    "reply",
    [
        STS,
        {**STS, "S1": "S1 is the name of a motorway in Vienna."},  # starts like a field name, but is text
        {**STS, "S3": "5"},  # a number is not a placeholder
        {**STS, "S2": "A1 is the first level of the language framework."},
    ],
)
def test_real_text_passes(reply):
    assert validate(_sts_request(), reply) == reply


def test_a_quoted_query_inside_a_long_document_is_left_to_the_quality_checks():
    doc = "Many gardeners ask how do plants make food, and the answer is photosynthesis in the leaves of the plant."
    reply = {**VALID, "user_query": "how do plants make food", "positive_document": doc}
    assert validate(_request(), reply)["positive_document"] == doc


def test_placeholder_tasks_are_dropped_from_a_brainstorm_list():
    request = _request(stage=STAGE_BRAINSTORM)
    assert validate(request, ["...", "Given a claim, find evidence.", "<task>", "string"]) == [
        "Given a claim, find evidence."
    ]
    with pytest.raises(ParseFailure, match="no_tasks"):
        validate(request, ["...", "T1.4"])


def test_a_brainstorm_list_cut_by_its_cap_keeps_its_complete_tasks():
    text = '["Given a claim, find evidence.", "Given a recipe, find its origin.", "Given a word, fi'
    result = PredictionResult(
        _request(stage=STAGE_BRAINSTORM, element_id="b"), Completion(text=text, model="m", finish_reason="length")
    )
    with TestPipeline() as p:
        parsed, retry, dead = p | beam.Create([result]) | ParseAndValidate(run_seed=1, max_retries=1)
        assert_that(
            parsed | beam.Map(lambda t: t[2]),
            equal_to([["Given a claim, find evidence.", "Given a recipe, find its origin."]]),
        )


def test_degenerate_replies_are_re_asked_then_dead_lettered_with_their_reason():
    echoed = json.dumps({"S1": "S1", "S2": "S2", "S3": "S3"})
    first = PredictionResult(_sts_request(), Completion(text=echoed, model="m"))
    last = PredictionResult(_sts_request()._replace(attempt=2), Completion(text=echoed, model="m"))
    with TestPipeline() as p:
        _, retry, dead = p | beam.Create([first, last]) | ParseAndValidate(run_seed=1, max_retries=2)
        assert_that(
            retry | "Retry" >> beam.Map(lambda r: (r.attempt, r.failures[-1].split(":")[1].strip())),
            equal_to([(1, "echoed_field")]),
            label="retry",
        )
        assert_that(
            dead | "Dead" >> beam.Map(lambda d: (d.reason, d.attempts, d.raw_text)),
            equal_to([("echoed_field", 3, echoed)]),
            label="dead",
        )
