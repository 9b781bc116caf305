"""The OpenAI-compatible path end to end against a real server: llama-cpp-python's server on the embedded GGUF."""

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from pipelines import generate
from tests.support.helpers import read_table
from transforms import recipe
from transforms.elements import Element
from transforms.models.llama_cpp import default_model_path
from transforms.models.openai_compat import OpenAICompatHandler, OpenAISettings
from transforms.models.remote import RemoteSettings
from transforms.parse import extract_json, validate
from transforms.render import render

pytestmark = pytest.mark.model

ALIAS = "smollm2"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``python -m llama_cpp.server`` on 127.0.0.1, serving the embedded GGUF; stopped after the module."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", default_model_path(), "--model_alias", ALIAS,
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
    ]  # fmt: skip
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"}
        )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(base + "/models", timeout=5) as response:
                    if ALIAS in response.read().decode("utf-8"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not answer within 180 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_one_request_gets_schema_valid_json_from_the_server(server):
    element = Element(
        "server-1",
        "text-matching-short",
        "generate",
        task="Given a city name, find its country.",
        attributes=(("language", "en"),),
    )
    request = render(element, 11)
    handler = OpenAICompatHandler(
        RemoteSettings(model=ALIAS, max_tokens=256, max_concurrent_requests=1, request_timeout=300),
        OpenAISettings(server),
    )
    client = handler.create_client()
    (result,) = handler.request([request], client)
    completion = result.inference
    assert completion.error is None, completion.error
    assert completion.model == f"openai:{ALIAS}" and completion.completion_tokens > 0
    # llama-cpp-python's server has no json_schema response_format; the handler stepped down to JSON mode + schema.
    assert client.client.level == "json_object_schema"
    if completion.finish_reason == "stop":  # a reply cut at max_tokens is the parser's business, not the server's
        outputs = validate(request, extract_json(completion.text, completion.finish_reason))
        assert set(outputs) == set(recipe.get_task_type("text-matching-short").output_keys)
    else:
        assert completion.text.lstrip().startswith("{")  # constrained to the JSON object, cut at max_tokens


def test_pipeline_runs_end_to_end_through_model_openai(server, tmp_path, capsys):
    out = str(tmp_path / "out")
    argv = [
        "--output", out, "--model", f"openai:{ALIAS}", "--api-base", server, "--categories", "text-matching-short",
        "--brainstorm-rounds", "1", "--tasks-per-category", "1", "--examples-per-task", "2", "--max-tokens", "256",
        "--max-parse-retries", "1", "--max-concurrent-requests", "1", "--request-timeout", "300",
    ]  # fmt: skip
    code = generate.run(argv)
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "requested = written + dead-lettered: yes" in printed
    rows, dead = read_table(out, "text-matching-short"), read_table(out, "dead_letter")
    generate_dead = [d for d in dead if d["stage"] == "generate"]
    brainstorm_dead = [d for d in dead if d["stage"] == "brainstorm"]
    assert len(rows) + len(generate_dead) == (0 if brainstorm_dead else 2)
    assert rows or dead
    for row in rows:
        assert row["model"] == f"openai:{ALIAS}" and row["input"] and row["positive_document"]
    for d in dead:
        assert d["reason"] != "model_error", d["detail"]  # the server accepted every call; only replies may be bad
