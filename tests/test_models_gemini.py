"""The Gemini handler through the real google-genai client, pointed at the local generateContent stand-in."""

import json

import pytest

from pipelines import generate
from tests.support.helpers import read_table
from tests.support.standins import Fault, FaultCycle, StandIn
from transforms import recipe
from transforms.elements import Element
from transforms.models.gemini import FLEX_HEADER, GeminiHandler, GeminiSettings, gemini_schema
from transforms.models.remote import RemoteSettings
from transforms.render import render


@pytest.fixture
def adc(monkeypatch, tmp_path, standin):
    """Application Default Credentials: a service-account key file whose token endpoint is the stand-in."""
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", standin.write_adc_file(tmp_path))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    for name in ("GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION", "GOOGLE_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return standin


def _requests(n):
    elements = [
        Element(f"g-{i}", "text-retrieval", "generate", task=f"Given question {i}, find its answer.", attributes=(
            ("query_type", "common"), ("query_length", "5 to 15 words"), ("difficulty", "college"),
            ("clarity", "clear"), ("num_words", "50"), ("language", "en"),
        ))
        for i in range(n)
    ]  # fmt: skip
    return [render(e, 7) for e in elements]


def _handler(standin, flex=False, **settings):
    settings.setdefault("model", "gemini-test")
    location = "global" if flex else "us-central1"
    return GeminiHandler(
        RemoteSettings(**settings), GeminiSettings("my-project", location, api_base=standin.url, flex=flex)
    )


def test_one_generate_content_call_per_element_with_schema_seed_and_adc_token(adc):
    requests = _requests(4)
    handler = _handler(adc, max_tokens=300, temperature=0.7)
    results = handler.request(requests, handler.create_client())
    assert [r.example for r in results] == requests
    task_type = recipe.get_task_type("text-retrieval")
    for result in results:
        completion = result.inference
        assert completion.error is None and completion.model == "gemini:gemini-test"
        assert set(json.loads(completion.text)) == set(task_type.output_keys)
    calls = {c.prompt: c for c in adc.model_calls()}
    assert len(calls) == 4 and adc.token_requests >= 1
    for request in requests:
        call = calls[request.prompt]
        assert (
            call.path
            == "/v1beta1/projects/my-project/locations/us-central1/publishers/google/models/gemini-test:generateContent"
        )
        assert call.headers["authorization"] == f"Bearer {StandIn.TOKEN}"
        assert FLEX_HEADER.lower() not in call.headers
        config = call.body["generationConfig"]
        assert config["responseMimeType"] == "application/json"
        assert config["seed"] == request.sampling_seed
        assert config["maxOutputTokens"] == 300 and config["temperature"] == 0.7
        schema = config["responseSchema"]
        assert schema["type"] == "OBJECT" and schema["required"] == list(task_type.output_keys)


def test_flex_requests_carry_the_flex_header(adc):
    handler = _handler(adc, flex=True)
    handler.request(_requests(1), handler.create_client())
    (call,) = adc.model_calls()
    assert call.headers[FLEX_HEADER.lower()] == "flex"
    assert "/locations/global/" in call.path


def test_max_tokens_finish_is_reported_as_length(adc):
    adc.faults = [Fault("truncated")]
    handler = _handler(adc)
    (result,) = handler.request(_requests(1), handler.create_client())
    assert result.inference.finish_reason == "length" and result.inference.error is None


def test_gemini_schema_translates_the_declared_shapes():
    brainstorm = gemini_schema(recipe.BRAINSTORM_SCHEMA)
    assert brainstorm == {
        "type": "ARRAY",
        "items": {"type": "STRING", "min_length": 1, "max_length": 300},
        "min_items": 1,
        "max_items": 20,
    }
    example = gemini_schema(recipe.get_task_type("monolingual-triplet").json_schema())
    assert example["property_ordering"] == ["S1", "S2", "S3"] and "additionalProperties" not in example


def test_pipeline_recovers_429_and_500_reasks_bad_json_and_dead_letters_400(adc, tmp_path, capsys):
    roles = FaultCycle(["429", "500", "400", "non_json", None], always=("400",))
    adc.faults = roles.rules
    out = str(tmp_path / "out")
    argv = [
        "--output", out, "--model", "gemini:gemini-test", "--api-base", adc.url, "--project", "my-project",
        "--region", "us-central1", "--categories", "monolingual-triplet", "--examples-per-symmetric-type", "10",
        "--max-parse-retries", "1", "--max-concurrent-requests", "4",
    ]  # fmt: skip
    code = generate.run(argv)
    assert code == 0, capsys.readouterr().err
    rows, dead = read_table(out, "monolingual-triplet"), read_table(out, "dead_letter")
    assert len(rows) + len(dead) == 10
    bad_prompts = roles.prompts("400")
    assert bad_prompts and {d["prompt"] for d in dead} == bad_prompts
    for d in dead:
        assert d["reason"] == "model_error" and d["attempts"] == 1 and "invalid argument" in d["detail"]
        assert d["model"] == "gemini:gemini-test"
    calls = adc.model_calls()
    for prompt, role in roles.assigned.items():
        mine = [c for c in calls if c.prompt == prompt]
        if role in ("429", "500"):
            assert mine[0].status == int(role) and mine[-1].status == 200, (role, [c.status for c in mine])
        if role == "non_json":
            assert len({c.seed for c in mine}) == 2, "a re-ask must use a new derived seed"
    assert len(roles.assigned) == 10, "the ten elements should have ten different prompts"
    reasked = [r for r in rows if r["attempts"] == 2]
    assert len(reasked) == len(roles.prompts("non_json"))
    assert all(r["attempts"] == 1 for r in rows if r not in reasked), "a 429/500 retry is not a new attempt"
    assert all(r["model"] == "gemini:gemini-test" for r in rows)


@pytest.mark.parametrize(
    "extra,env,must_say",
    [
        (["--project", "my-project"], {}, ["--region", "GOOGLE_CLOUD_LOCATION"]),
        (["--project", "my-project", "--region", "us-central1", "--vertex-flex"], {}, ["--vertex-flex", "global"]),
        (["--region", "us-central1"], {"adc_project": None}, ["--project", "GOOGLE_CLOUD_PROJECT"]),
        (["--project", "my-project", "--region", "us-central1"], {"adc": "missing"}, ["Application Default Credentials", "gcloud auth application-default login"]),  # noqa: E501
        (["--project", "my-project", "--region", "us-central1"], {"adc": "no-token"}, ["access token"]),
        (["--project", "my-project", "--region", "us-central1", "--thinking-budget", "-1"], {}, ["--thinking-budget"]),
    ],
)  # fmt: skip
def test_missing_location_project_or_credentials_fail_before_any_call(
    adc, tmp_path, monkeypatch, capsys, extra, env, must_say
):
    if "adc_project" in env:
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", adc.write_adc_file(tmp_path, project=None))
    if env.get("adc") == "missing":
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-such-key.json"))
    if env.get("adc") == "no-token":
        with StandIn() as gone:
            path = gone.write_adc_file(tmp_path)  # its token endpoint is closed once the block ends
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", path)
    out = tmp_path / "out"
    code = generate.run(["--output", str(out), "--model", "gemini:gemini-test", "--api-base", adc.url, *extra])
    err = capsys.readouterr().err
    assert code == 2
    for text in must_say:
        assert text in err, (text, err)
    assert adc.model_calls() == [] and not out.exists()
