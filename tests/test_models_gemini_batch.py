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
from transforms.models import gemini_batch
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
    listed = len(adc.list_calls)
    assert listed == submitted, "one list call per new batch, before its create"
    assert generate.run([*argv, "--resume"]) == 0
    assert adc.creates == submitted, "a running job was submitted again"
    assert len(adc.list_calls) == listed, "a batch with a journal record lists no jobs"
    rows, dead = read_table(str(tmp_path / "out"), CATEGORY), read_table(str(tmp_path / "out"), "dead_letter")
    assert len(rows) == 12 and not dead and len({r["example_id"] for r in rows}) == 12
    keys = _answered_lines(adc)
    assert sum(keys.values()) == 12 and set(keys.values()) == {1}
    # A second resume: everything is finished, nothing is submitted or polled for results again.
    assert generate.run([*argv, "--resume"]) == 0
    assert adc.creates == submitted
    assert json.dumps(sorted(r["digest"] for r in read_job_records(str(tmp_path / "out"))))


def _rows_and_dead(tmp_path, output="out"):
    return read_table(str(tmp_path / output), CATEGORY), read_table(str(tmp_path / output), "dead_letter")


def _die_after_first_create(monkeypatch):
    """The first job's journal write raises (later ones pass), as if its process died between create and record."""
    saved = gemini_batch.save_record
    calls = []

    def dying(journal, record):
        calls.append(record["name"])
        if len(calls) == 1:
            raise RuntimeError("worker died after creating the job")
        saved(journal, record)

    monkeypatch.setattr(gemini_batch, "save_record", dying)
    return calls


def _died_run(adc, tmp_path, monkeypatch):
    """A run whose first created job is left unrecorded; returns that stand-in job."""
    calls = _die_after_first_create(monkeypatch)
    with pytest.raises(Exception, match="worker died"):
        generate.run(_argv(adc, tmp_path))
    (job,) = [j for j in adc.jobs.values() if j.name == calls[0]]
    assert job.name not in {r["name"] for r in read_job_records(str(tmp_path / "out"))}
    return job


@pytest.mark.parametrize("state", ["JOB_STATE_PENDING", "JOB_STATE_SUCCEEDED"])
def test_job_created_but_never_recorded_is_adopted_by_resume(adc, tmp_path, monkeypatch, capsys, state):
    orphan = _died_run(adc, tmp_path, monkeypatch)
    while orphan.state != state:
        adc._advance(orphan)  # PENDING as created; SUCCEEDED after its polls, results written
    if orphan.ended:
        orphan.ended -= 3600  # it ended an hour before this run found it
    capsys.readouterr()
    assert generate.run([*_argv(adc, tmp_path), "--resume"]) == 0
    out, _ = capsys.readouterr()
    per_name = collections.Counter(j.display_name for j in adc.jobs.values())
    assert per_name[orphan.display_name] == 1, "the unrecorded job was created again"
    assert set(per_name.values()) == {1}
    rows, dead = _rows_and_dead(tmp_path)
    assert len(rows) == 12 and not dead and len({r["example_id"] for r in rows}) == 12
    keys = _answered_lines(adc)
    assert sum(keys.values()) == 12 and set(keys.values()) == {1}
    (record,) = [r for r in read_job_records(str(tmp_path / "out")) if r["name"] == orphan.name]
    assert record["state"] == "JOB_STATE_SUCCEEDED" and record["answered"] == record["requests"]
    assert abs(record["submitted"] - orphan.created) < 1.0, "submitted is the job's create_time"
    if orphan.ended:  # ended before the run found it: the job's end_time, not when the run saw it
        assert abs(record["ended"] - orphan.ended) < 1.0
    assert "adopted 1" in out


@pytest.mark.parametrize("state", ["JOB_STATE_FAILED", "JOB_STATE_CANCELLED"])
def test_job_found_failed_or_cancelled_is_not_adopted(adc, tmp_path, monkeypatch, capsys, state):
    orphan = _died_run(adc, tmp_path, monkeypatch)
    with adc.lock:
        orphan.state = state
    capsys.readouterr()
    assert generate.run([*_argv(adc, tmp_path), "--resume"]) == 0
    out, _ = capsys.readouterr()
    again = adc.named(orphan.display_name)
    assert [j.name for j in again][0] == orphan.name and len(again) == 2, "a new job replaced the ended one"
    assert orphan.state == state and again[1].state == "JOB_STATE_SUCCEEDED"
    (record,) = [r for r in read_job_records(str(tmp_path / "out")) if r["digest"][:16] == orphan.display_name[9:]]
    assert record["name"] == again[1].name
    rows, dead = _rows_and_dead(tmp_path)
    assert len(rows) == 12 and not dead
    assert "adopted" not in out


def test_resume_with_recorded_jobs_lists_none(adc, tmp_path, monkeypatch, capsys):
    wait, stopping = gemini_batch.GeminiBatchHandler.wait, [True]

    def stopped(self, client, record):
        if stopping[0]:
            raise RuntimeError("worker stopped while waiting")
        return wait(self, client, record)

    monkeypatch.setattr(gemini_batch.GeminiBatchHandler, "wait", stopped)
    with pytest.raises(Exception, match="worker stopped"):
        generate.run(_argv(adc, tmp_path))
    stopping[0] = False
    submitted, listed = adc.creates, len(adc.list_calls)
    assert submitted >= 3 and len(read_job_records(str(tmp_path / "out"))) == submitted
    assert listed == submitted, "one list call per new batch"
    capsys.readouterr()
    assert generate.run([*_argv(adc, tmp_path), "--resume"]) == 0
    out, _ = capsys.readouterr()
    assert len(adc.list_calls) == listed and adc.creates == submitted
    assert f"reused {submitted}" in out and "adopted" not in out
    assert len(_rows_and_dead(tmp_path)[0]) == 12


def test_job_of_another_run_is_adopted_only_with_the_same_staged_requests(adc, tmp_path, capsys):
    """Same seed and --temp_location, fresh --output: the digests match; the staged lines decide."""
    assert generate.run(_argv(adc, tmp_path)) == 0
    first = adc.creates
    same = _argv(adc, tmp_path)
    same[same.index("--output") + 1] = str(tmp_path / "out2")
    capsys.readouterr()
    assert generate.run(same) == 0
    assert adc.creates == first and f"adopted {first}" in capsys.readouterr().out
    assert len(_rows_and_dead(tmp_path, "out2")[0]) == 12
    other = [*_argv(adc, tmp_path), "--temperature", "0.5"]
    other[other.index("--output") + 1] = str(tmp_path / "out3")
    assert generate.run(other) == 0
    assert adc.creates == 2 * first and "adopted" not in capsys.readouterr().out
    assert len(_rows_and_dead(tmp_path, "out3")[0]) == 12
    new_lines = [line for job in adc.jobs.values() if job.number > first for line in adc.input_lines(job)]
    assert len(new_lines) == 12 and {line["request"]["generationConfig"]["temperature"] for line in new_lines} == {0.5}
    # The new jobs write beside the first run's under the same batch folders; each is read from its own folder only.
    records = read_job_records(str(tmp_path / "out3"))
    assert records and all(r["output_dir"] and r["duplicates"] == 0 and r["answered"] == r["requests"] for r in records)


def test_standin_lists_by_display_name_in_pages_through_google_genai(adc):
    from google import genai
    from google.genai import errors, types

    client = genai.Client(
        vertexai=True, project="p", location="us-central1", http_options=types.HttpOptions(base_url=adc.url)
    )
    for name in ("embedgen-a", "embedgen-b", "embedgen-a", "embedgen-a"):
        client.batches.create(
            model="gemini-2.5-flash",
            src=types.BatchJobSource(format="jsonl", gcs_uri=["/nowhere/input.jsonl"]),
            config=types.CreateBatchJobConfig(
                display_name=name, dest=types.BatchJobDestination(format="jsonl", gcs_uri="/nowhere/output")
            ),
        )
    adc.page_size = 2
    for text in ('display_name="embedgen-a"', 'displayName = "embedgen-a"'):
        before = len(adc.list_calls)
        jobs = list(client.batches.list(config=types.ListBatchJobsConfig(filter=text)))
        assert [j.name.rsplit("/", 1)[1] for j in jobs] == ["1001", "1003", "1004"]
        assert {j.display_name for j in jobs} == {"embedgen-a"}
        assert len(adc.list_calls) - before == 2 and adc.list_calls[-1]["pageToken"] == "page-2"
    assert len(list(client.batches.list(config=types.ListBatchJobsConfig(page_size=1)))) == 4
    with pytest.raises(errors.ClientError) as bad:
        list(client.batches.list(config=types.ListBatchJobsConfig(filter='labels.run:*"')))
    assert bad.value.code == 400


def test_newest_job_of_the_name_is_chosen():
    """The list's order is not relied on; a job of another name (a filter the service ignored) is never chosen."""
    import datetime
    from types import SimpleNamespace

    from transforms.models.gemini_batch_jobs import newest

    def job(name, display, minute):
        created = None if minute is None else datetime.datetime(2025, 1, 1, 0, minute, tzinfo=datetime.timezone.utc)
        return SimpleNamespace(name=name, display_name=display, create_time=created)

    jobs = [
        job("j/1", "embedgen-a", 1),
        job("j/4", "embedgen-a", None),
        job("j/2", "embedgen-a", 5),
        job("j/3", "embedgen-b", 9),
    ]
    assert newest(jobs, "embedgen-a").name == "j/2"
    assert newest(jobs, "embedgen-b").name == "j/3" and newest(jobs, "embedgen-c") is None
