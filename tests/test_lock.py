"""OutputLock: a second run on a held --output is refused at once; a killed run's stale lock is taken over."""

import json
import logging
import os
import signal
import subprocess
import sys
import time

from pipelines import generate
from pipelines.lock import LOCK_FILE, OutputLock
from tests.support.fakes import FakeHandler
from tests.support.helpers import read_table

ARGS = ["--categories", "monolingual-triplet", "--examples-per-symmetric-type", "2"]

_HOLDER = """
import sys, time
from pipelines.lock import OutputLock
lock = OutputLock(sys.argv[1], command="holder").acquire()
print("locked", flush=True)
time.sleep(120)
"""


def _hold(out):
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    child = subprocess.Popen([sys.executable, "-c", _HOLDER, out], stdout=subprocess.PIPE, text=True, env=env)
    assert child.stdout.readline().strip() == "locked"
    return child


def test_a_second_run_on_a_held_output_is_refused_at_once(tmp_path, capsys):
    out = str(tmp_path / "out")
    holder = _hold(out)
    try:
        started = time.monotonic()
        calls = []
        code = generate.run(["--output", out, *ARGS], handler=FakeHandler(lambda r: calls.append(r)))
        refused_after = time.monotonic() - started
        err = capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    assert code == 2 and not calls
    assert f"--output {out} is in use by another embedgen run (pid {holder.pid} on " in err
    assert "holder" in err
    assert refused_after < 30  # refused, not queued behind the holder (which sleeps 120 s)


def test_a_killed_runs_stale_lock_is_reported_and_taken_over(tmp_path, caplog):
    out = str(tmp_path / "out")
    holder = _hold(out)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    lock_path = os.path.join(out, LOCK_FILE)
    assert json.load(open(lock_path))["pid"] == holder.pid  # the killed run left its lock file behind
    with caplog.at_level(logging.WARNING, logger="pipelines.lock"):
        assert generate.run(["--output", out, *ARGS], handler=FakeHandler()) == 0
    assert f"took over the stale lock of an earlier run that did not end cleanly (pid {holder.pid}" in caplog.text
    assert len(read_table(out, "monolingual-triplet")) == 2
    assert not os.path.exists(lock_path), "a finished run left its lock behind"


def test_the_lock_is_released_when_the_run_fails(tmp_path):
    out = str(tmp_path / "out")

    def crash(request):
        raise RuntimeError("model crashed")

    try:
        generate.run(["--output", out, *ARGS], handler=FakeHandler(crash))
    except Exception:  # noqa: BLE001 - the run's own error is not what this test is about
        pass
    with OutputLock(out) as lock:
        assert lock.stale is None
