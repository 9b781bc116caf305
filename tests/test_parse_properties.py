"""Property-based tests: whatever the model returns, the parser yields a row or a dead letter and never raises."""

import json

from apache_beam.ml.inference.base import PredictionResult
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transforms import recipe
from transforms.elements import Completion, DeadLetter, Element
from transforms.parse import _ParseDoFn
from transforms.render import render

_ELEMENTS = [
    Element(
        "e-tr",
        "text-retrieval",
        "generate",
        "Given a claim, find evidence.",
        (
            ("query_type", "common"),
            ("query_length", "5 to 15 words"),
            ("difficulty", "college"),
            ("clarity", "clear"),
            ("num_words", "50"),
            ("language", "en"),
        ),
    ),
    Element(
        "e-bt",
        "bitext-retrieval",
        "generate",
        None,
        (
            ("unit", "sentence"),
            ("difficulty", "college"),
            ("high_score", "4"),
            ("low_score", "2"),
            ("source_language", "en"),
            ("target_language", "sw"),
        ),
    ),
    Element("e-bs", "text-classification", "brainstorm"),
]
_REQUESTS = [render(e, run_seed=1) for e in _ELEMENTS]

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=5),
    max_leaves=30,
)


def _texts():
    keyed = st.fixed_dictionaries({k: st.text() for k in ("user_query", "positive_document", "hard_negative_document")})
    return st.one_of(
        st.text(),  # arbitrary text, including lone surrogates
        st.binary().map(lambda b: b.decode("utf-8", errors="surrogateescape")),  # invalid UTF-8
        _json_values.map(json.dumps),
        keyed.map(json.dumps),
        keyed.map(lambda d: "```json\n" + json.dumps(d) + "\n```"),
        keyed.map(lambda d: json.dumps(d)[: len(json.dumps(d)) // 2]),  # truncated
        st.integers(min_value=1, max_value=50_000).map(lambda n: "[" * n + "]" * n),  # deeply nested
        st.integers(min_value=1, max_value=5).map(lambda n: json.dumps({"user_query": "x" * (n * 200_000)})),  # huge
        st.sampled_from(["__import__('os').system('touch /tmp/embedgen_pwned')", "{'a': 1}", "eval('1')"]),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    text=_texts(),
    which=st.integers(0, len(_REQUESTS) - 1),
    attempt=st.integers(0, 2),
    finish=st.sampled_from(["stop", "length"]),
)
def test_parser_always_yields_exactly_one_outcome(text, which, attempt, finish):
    request = _REQUESTS[which]._replace(attempt=attempt)
    fn = _ParseDoFn(run_seed=1, max_retries=2)
    fn.setup()
    outputs = list(fn.process(PredictionResult(request, Completion(text=text, model="m", finish_reason=finish))))
    assert len(outputs) == 1
    out = outputs[0]
    if isinstance(out, tuple) and not hasattr(out, "tag"):
        parsed_request, _, value = out
        assert parsed_request is request
        if request.element.stage == "brainstorm":
            assert value and all(isinstance(t, str) and t for t in value)
        else:
            assert list(value) == list(recipe.get_task_type(request.element.category).output_keys)
            assert all(isinstance(v, str) and v.strip() and v.encode("utf-8") for v in value.values())
    else:
        assert out.tag in ("retry", "dead")
        if out.tag == "dead":
            dead = out.value
            assert isinstance(dead, DeadLetter) and dead.reason and dead.element_id == request.element.element_id
            for field in (dead.prompt, dead.raw_text, dead.detail, *dead.failures):
                field.encode("utf-8")  # always storable
        else:
            assert out.value.attempt == attempt + 1


def test_python_literals_are_never_evaluated(tmp_path):
    marker = tmp_path / "pwned"
    text = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    fn = _ParseDoFn(run_seed=1, max_retries=0)
    fn.setup()
    (out,) = fn.process(PredictionResult(_REQUESTS[0], Completion(text=text, model="m")))
    assert out.tag == "dead" and out.value.reason == "not_json"
    assert not marker.exists()
