"""The OpenAI-compatible handler against the local stand-in: structured output levels, keys, faults, whole runs."""

import json

import pytest

from pipelines import generate
from tests.support.helpers import prompt_requests, read_table
from tests.support.standins import FaultCycle
from transforms import recipe
from transforms.models.openai_compat import OpenAICompatHandler, OpenAISettings, openai_schema, response_format
from transforms.models.remote import RemoteSettings


def _requests(n, category="text-matching-long"):
    return prompt_requests(n, category, "de", 3, "o")


def _handler(standin, structured_output="auto", **settings):
    settings.setdefault("model", "served-model")
    return OpenAICompatHandler(
        RemoteSettings(**settings), OpenAISettings(standin.openai_base_url, "EMBEDGEN_TEST_KEY", structured_output)
    )


def test_request_carries_model_seed_limits_and_json_schema(standin, monkeypatch):
    monkeypatch.setenv("EMBEDGEN_TEST_KEY", "sk-test-123")
    requests = _requests(3)
    handler = _handler(standin, max_tokens=200, temperature=0.5, top_p=0.9)
    results = handler.request(requests, handler.create_client())
    assert [r.inference.model for r in results] == ["openai:served-model"] * 3
    by_prompt = {c.prompt: c for c in standin.model_calls()}
    for request in requests:
        call = by_prompt[request.prompt]
        body = call.body
        assert body["model"] == "served-model" and body["seed"] == request.sampling_seed
        assert body["max_tokens"] == 200 and body["temperature"] == 0.5 and body["top_p"] == 0.9
        assert body["messages"] == [{"role": "user", "content": request.prompt}]
        assert body["response_format"]["type"] == "json_schema"
        assert body["response_format"]["json_schema"]["schema"] == openai_schema(json.loads(request.schema_json))
        assert call.headers["authorization"] == "Bearer sk-test-123"


def test_auto_steps_down_once_when_the_server_rejects_json_schema(standin):
    standin.openai_formats = ("json_object",)
    handler = _handler(standin, max_concurrent_requests=1)
    results = handler.request(_requests(4), handler.create_client())
    assert all(r.inference.error is None for r in results)
    kinds = [
        (c.body["response_format"]["type"], "schema" in c.body["response_format"], c.status)
        for c in standin.model_calls()
    ]
    assert kinds[0] == ("json_schema", False, 400)
    assert kinds[1:] == [("json_object", True, 200)] * 4


def test_a_pinned_level_is_never_changed(standin):
    standin.openai_formats = ("json_object",)
    handler = _handler(standin, structured_output="json_schema")
    (result,) = handler.request(_requests(1), handler.create_client())
    assert "response_format" in result.inference.error and not result.inference.retryable
    assert len(standin.model_calls()) == 1


def test_plain_json_mode_sends_no_schema():
    assert response_format("json_object", {"type": "object"}) == {"type": "json_object"}


def test_openai_schema_has_an_object_root_and_no_length_bounds():
    wrapped = openai_schema(recipe.BRAINSTORM_SCHEMA)
    assert wrapped["type"] == "object" and wrapped["required"] == ["tasks"]
    assert wrapped["properties"]["tasks"] == {
        "type": "array",
        "items": {"type": "string"},
        "minItems": 1,
        "maxItems": 20,
    }
    example = openai_schema(recipe.get_task_type("text-retrieval").json_schema())
    assert "maxLength" not in json.dumps(example) and example["additionalProperties"] is False


def test_whole_run_through_flags_with_every_reply_fault(standin, tmp_path, capsys):
    # Each distinct prompt's first call gets one of the faults; its re-ask (or transport retry) gets a valid reply.
    standin.faults = FaultCycle(["non_json", "truncated", "missing_keys", "empty", "503", "drop", None, None]).rules
    out = str(tmp_path / "out")
    argv = [
        "--output", out, "--model", "openai:served-model", "--api-base", standin.openai_base_url,
        "--tasks-per-category", "2", "--examples-per-task", "1", "--examples-per-symmetric-type", "2",
        "--max-parse-retries", "1", "--request-timeout", "5",
    ]  # fmt: skip
    code = generate.run(argv)
    assert code == 0, capsys.readouterr().err
    written = {c: read_table(out, c) for c in recipe.CATEGORIES}
    assert read_table(out, "dead_letter") == []
    for task_type in recipe.TASK_TYPES:
        if task_type.brainstorm:
            # A brainstorm list cut short keeps the tasks completed before the cut (no re-ask), so the category whose
            # brainstorm reply got the "truncated" fault may have fewer tasks than the cap of 2.
            assert 1 <= len(written[task_type.name]) <= 2, task_type.name
        else:
            assert len(written[task_type.name]) == 2, task_type.name
    assert sum(len(rows) for rows in written.values()) >= 2 * len(recipe.TASK_TYPES) - 1
    rows = [r for rows in written.values() for r in rows]
    assert all(r["model"] == "openai:served-model" for r in rows)
    assert any(r["attempts"] == 2 for r in rows), "bad replies are asked again"
    assert {c.fault for c in standin.model_calls()} >= {"non_json", "truncated", "missing_keys", "empty", "503", "drop"}


@pytest.mark.parametrize(
    "extra,must_say",
    [
        ([], ["--api-base", "required"]),
        (["--api-base", "localhost:8000"], ["--api-base", "http"]),
        (["--api-base", "http://127.0.0.1:9/v1", "--max-concurrent-requests", "0"], ["--max-concurrent-requests"]),
        (["--api-base", "http://127.0.0.1:9/v1", "--requests-per-minute", "0"], ["--requests-per-minute"]),
        (["--api-base", "http://127.0.0.1:9/v1", "--structured-output", "xml"], ["--structured-output", "json_schema"]),
    ],
)
def test_bad_remote_flags_fail_before_any_call(tmp_path, capsys, extra, must_say):
    out = tmp_path / "out"
    try:
        code = generate.run(["--output", str(out), "--model", "openai:served-model", *extra])
    except SystemExit as exit_:  # argparse rejects a closed-set value itself
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2
    for text in must_say:
        assert text in err, (text, err)
    assert not out.exists()
