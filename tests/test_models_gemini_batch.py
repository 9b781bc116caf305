"""--vertex-batch through the real google-genai client and google-auth, against the batch prediction stand-in."""

import collections
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pipelines import generate
from tests.support.helpers import read_table
from tests.support.standins.vertex_batch import BatchStandIn
from transforms.models.gemini_batch import read_job_records

CATEGORY = "monolingual-triplet"


@pytest.fixture
def adc(monkeypatch, tmp_path):
    with BatchStandIn() as standin:
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", standin.write_adc_file(tmp_path))
        monkeypatch.setenv("NO_GCE_CHECK", "True")
        for name in ("GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION", "GOOGLE_API_KEY", "GEMINI_API_KEY"):
            monkeypatch.delenv(name, raising=False)
        yield standin


def _argv(standin, tmp_path, n=12, size=5, retries=2, *extra):
    return [
        "--output", str(tmp_path / "out"), "--model", "gemini:gemini-2.5-flash", "--api-base", standin.url,
        "--project", "my-project", "--region", "us-central1", "--temp_location", str(tmp_path / "tmp"),
        "--vertex-batch", "--vertex-batch-size", str(size), "--vertex-batch-poll", "0.02",
        "--categories", CATEGORY, "--examples-per-symmetric-type", str(n), "--max-parse-retries", str(retries),
        *extra,
    ]  # fmt: skip


def _answered_lines(standin):
    """(element-level prompt, attempt-level key) of every input line, per job, from the staged files."""
    keys = collections.Counter()
    for job in standin.jobs.values():
        for line in standin.input_lines(job):
            keys[line["key"]] += 1
    return keys


def test_every_element_is_answered_by_exactly_one_batch_line(adc, tmp_path, capsys):
    code = generate.run(_argv(adc, tmp_path))
    out, err = capsys.readouterr()
    assert code == 0, err
    rows, dead = read_table(str(tmp_path / "out"), CATEGORY), read_table(str(tmp_path / "out"), "dead_letter")
    assert len(rows) == 12 and not dead
    assert len({r["example_id"] for r in rows}) == 12
    keys = _answered_lines(adc)
    assert sum(keys.values()) == 12 and set(keys.values()) == {1}, "each request in exactly one job"
    jobs = list(adc.jobs.values())
    assert all(len(adc.input_lines(j)) <= 5 for j in jobs) and len(jobs) >= 3
    for job in jobs:
        line = adc.input_lines(job)[0]
        assert line["request"]["generationConfig"]["responseMimeType"] == "application/json"
        assert line["request"]["labels"]["embedgen_key"] == line["key"]
        assert job.model.endswith("gemini-2.5-flash")
    records = read_job_records(str(tmp_path / "out"))
    assert len(records) == len(jobs) and all(r["state"] == "JOB_STATE_SUCCEEDED" for r in records)
    assert sum(r["answered"] for r in records) == 12
    assert f"batch jobs: {len(jobs)} (succeeded {len(jobs)})" in out


def test_failed_job_and_failed_lines_are_asked_again_then_dead_lettered(adc, tmp_path, capsys):
    adc.fail_jobs = {1}
    prompts = {}

    def fault(prompt):
        # Per prompt: the 3rd distinct prompt fails every time, the 4th has no line once, the 5th is prose once.
        if prompt not in prompts:
            prompts[prompt] = [len(prompts), 0]
        role, seen = prompts[prompt]
        prompts[prompt][1] += 1
        if role == 2:
            return "error"
        if role == 3 and seen == 0:
            return "missing"
        if role == 4 and seen == 0:
            return "invalid"
        return None

    adc.line_fault = fault
    code = generate.run(_argv(adc, tmp_path, 10, 4, 2))
    out, err = capsys.readouterr()
    rows, dead = read_table(str(tmp_path / "out"), CATEGORY), read_table(str(tmp_path / "out"), "dead_letter")
    assert code == 0, err
    assert len(rows) + len(dead) == 10 and len({r["example_id"] for r in rows} | {d["element_id"] for d in dead}) == 10
    assert len(dead) == 1, dead
    (letter,) = dead
    assert letter["attempts"] == 3 and "batch line failed" in letter["detail"]
    records = read_job_records(str(tmp_path / "out"))
    states = collections.Counter(r["state"] for r in records)
    assert states["JOB_STATE_FAILED"] == 1 and {r["attempt"] for r in records} == {0, 1, 2}
    assert "failed 1" in out and "succeeded" in out
    reasked = [r for r in rows if r["attempts"] > 1]
    assert reasked, "the failed job's elements, the missing and the prose line were asked again"


def test_bad_batch_flags_exit_2_naming_the_flag(adc, tmp_path, capsys):
    cases = [
        (["--vertex-batch-size", "0"], "--vertex-batch-size"),
        (["--vertex-batch-poll", "-1"], "--vertex-batch-poll"),
    ]
    for extra, flag in cases:
        assert generate.run([*_argv(adc, tmp_path), *extra]) == 2
        assert flag in capsys.readouterr().err
    base = [a for a in _argv(adc, tmp_path) if a not in ("--vertex-batch",)]
    assert (
        generate.run([*base]) == 2 and "--vertex-batch-size applies only with --vertex-batch" in capsys.readouterr().err
    )
    no_temp = _argv(adc, tmp_path)
    i = no_temp.index("--temp_location")
    del no_temp[i : i + 2]
    assert generate.run(no_temp) == 2 and "--temp_location" in capsys.readouterr().err
    assert generate.run(["--output", str(tmp_path / "o2"), "--vertex-batch"]) == 2
    assert "--model gemini" in capsys.readouterr().err
    assert adc.creates == 0 and not (tmp_path / "out").exists()


def test_resume_after_a_kill_while_polling_picks_up_the_running_jobs(adc, tmp_path):
    adc.hold.set()
    argv = _argv(adc, tmp_path, 12, 5, 1)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    child = subprocess.Popen(
        [sys.executable, "-m", "pipelines.generate", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            jobs = list(adc.jobs.values())
            # Every job of the attempt is submitted and recorded before any is waited for; then one is being polled.
            recorded = len(read_job_records(str(tmp_path / "out"))) if jobs else 0
            if len(jobs) >= 3 and recorded == len(jobs) and max(j.gets for j in jobs) >= 3:
                break
            assert child.poll() is None, child.stderr.read().decode()
            time.sleep(0.2)
        else:
            pytest.fail("the jobs were never polled")
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    submitted = adc.creates
    assert submitted >= 3 and {j.state for j in adc.jobs.values()} <= {"JOB_STATE_PENDING", "JOB_STATE_RUNNING"}
    adc.hold.clear()
    assert generate.run([*argv, "--resume"]) == 0
    assert adc.creates == submitted, "a running job was submitted again"
    rows, dead = read_table(str(tmp_path / "out"), CATEGORY), read_table(str(tmp_path / "out"), "dead_letter")
    assert len(rows) == 12 and not dead and len({r["example_id"] for r in rows}) == 12
    keys = _answered_lines(adc)
    assert sum(keys.values()) == 12 and set(keys.values()) == {1}
    # A second resume: everything is finished, nothing is submitted or polled for results again.
    assert generate.run([*argv, "--resume"]) == 0
    assert adc.creates == submitted
    assert json.dumps(sorted(r["digest"] for r in read_job_records(str(tmp_path / "out"))))
