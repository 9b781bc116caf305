"""A quiet terminal: library noise and per-request lines stay off stderr (they go to --log-file or --verbose)."""

import logging
import os
import subprocess
import sys

from pipelines.terminal import TerminalFilter
from tests.support.standins.server import StandIn

RELAYED = (
    'Worker: severity: WARN timestamp {   seconds: 1   nanos: 2 } message: "Discarding unparseable args: '
    '[\\\'--x\\\']" log_location: "/venv/site-packages/apache_beam/runners/worker/sdk_worker_main.py:421" '
    'thread: "MainThread"'
)


def _record(name, level, msg, pathname="x.py"):
    return logging.LogRecord(name, level, pathname, 1, msg, (), None)


def test_filter_keeps_our_lines_and_the_first_of_each_library_warning():
    shown = TerminalFilter()
    assert shown.filter(_record("pipelines.progress", logging.INFO, "progress: ..."))
    assert not shown.filter(_record("httpx", logging.INFO, "HTTP Request: POST http://x/v1/chat/completions"))
    assert not shown.filter(_record("root", logging.WARNING, "Resource module is not available for current platform"))
    assert not shown.filter(_record("root", logging.WARNING, "apitools not found, and bigquery client libraries"))
    assert not shown.filter(_record("apache_beam.runners.portability.local_job_service", logging.WARNING, RELAYED))
    assert shown.filter(_record("urllib3", logging.WARNING, "Connection pool is full"))
    assert not shown.filter(_record("urllib3", logging.WARNING, "Connection pool is full"))  # once
    assert shown.filter(_record("apache_beam.io", logging.ERROR, "a real failure"))
    quiet = TerminalFilter(quiet=True)
    assert not quiet.filter(_record("pipelines.progress", logging.INFO, "progress: ..."))
    assert quiet.filter(_record("pipelines.lock", logging.WARNING, "took over a stale lock"))


def _generate(standin, out, *extra):
    env = dict(os.environ, PYTHONPATH=os.getcwd(), HF_HUB_OFFLINE="1")
    argv = [
        sys.executable,
        "-m",
        "pipelines.cli",
        "generate",
        "--model",
        "openai:standin",
        "--api-base",
        standin.openai_base_url,
        "--output",
        out,
        *extra,
    ]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900)


def test_thousands_of_calls_write_a_few_dozen_stderr_lines(tmp_path):
    log_file = tmp_path / "run.log"
    with StandIn(latency=0.0) as standin:
        done = _generate(
            standin,
            str(tmp_path / "out"),
            "--categories",
            "monolingual-triplet,bitext-retrieval",
            "--examples-per-symmetric-type",
            "1000",
            "--direct_num_workers",
            "2",
            "--direct_running_mode",
            "multi_processing",
            "--log-file",
            str(log_file),
        )
        calls = len(standin.model_calls())
    assert done.returncode == 0, done.stderr[-3000:]
    assert calls >= 2000
    lines = done.stderr.splitlines()
    assert len(lines) <= 36, "\n".join(lines)
    assert not [line for line in lines if "HTTP Request" in line or "severity:" in line]
    logged = log_file.read_text()
    # The lines kept off the terminal exist: the log file has the HTTP client's line of each request.
    assert logged.count("HTTP Request: POST") >= calls // 2, logged[-2000:]
    assert "requested = written + dead-lettered: yes" in done.stdout


def test_verbose_shows_the_per_request_lines(tmp_path):
    with StandIn(latency=0.0) as standin:
        done = _generate(
            standin, str(tmp_path / "out"), "--categories", "monolingual-triplet", "--examples-per-symmetric-type",
            "40", "--verbose",
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("HTTP Request: POST") >= 40
