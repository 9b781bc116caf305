"""The package as Beam's --setup_file ships it: an sdist installed with [gcp] into a fresh virtualenv."""

import glob
import os
import subprocess
import sys
import tarfile

import pytest

from tests.support.helpers import read_table
from tests.support.standins import StandIn

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(command, **kwargs):
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, **kwargs)
    assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _clean_env(**extra) -> dict:
    """The environment without anything that would let the checkout be imported (PYTHONPATH, a venv's PATH)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return {**env, "HF_HUB_OFFLINE": "1", **extra}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(virtualenv dir, sdist path): ``python setup.py sdist`` as Beam runs it, then ``pip install 'sdist[gcp]'``."""
    base = tmp_path_factory.mktemp("installed")
    dist = base / "dist"
    # What Beam's stager runs for --setup_file: `python setup.py sdist --dist-dir <tmp>` in the setup file's folder.
    _run([sys.executable, "setup.py", "sdist", "--dist-dir", str(dist)], cwd=ROOT, env=_clean_env())
    (sdist,) = glob.glob(str(dist / "embedgen-*.tar.gz"))
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], env=_clean_env())
    # A normal install, dependencies resolved by pip (its wheel cache makes a re-install quick).
    _run([str(venv / "bin" / "pip"), "install", "--quiet", f"{sdist}[gcp]"], cwd=str(base), env=_clean_env())
    return venv, sdist


def test_the_sdist_carries_every_template_and_data_file(installed):
    _, sdist = installed
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    in_checkout = {
        os.path.relpath(path, ROOT)
        for pattern in ("prompts/**/*.jinja2", "prompts/**/*.txt", "prompts/**/*.json", "transforms/**/*.txt",
                        "transforms/**/*.json")
        for path in glob.glob(os.path.join(ROOT, pattern), recursive=True)
    }  # fmt: skip
    assert in_checkout and in_checkout <= names, in_checkout - names


def test_installed_console_script_generates_from_outside_the_checkout(installed, tmp_path):
    venv, _ = installed
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = _clean_env(NO_GCE_CHECK="True")
    where = _run(
        [str(venv / "bin" / "python"), "-c", "import pipelines, prompts, transforms; print(prompts.__file__)"],
        cwd=str(elsewhere),
        env=env,
    ).stdout.strip()
    assert where.startswith(str(venv)) and not where.startswith(ROOT), where
    with StandIn() as standin:
        env["GOOGLE_APPLICATION_CREDENTIALS"] = standin.write_adc_file(str(tmp_path))
        out = elsewhere / "out"
        done = _run(
            [
                str(venv / "bin" / "embedgen"), "generate", "--output", str(out), "--model", "gemini:gemini-test",
                "--api-base", standin.url, "--project", "my-project", "--region", "us-central1",
                "--categories", "text-retrieval,monolingual-triplet", "--tasks-per-category", "2",
                "--examples-per-task", "1", "--examples-per-symmetric-type", "3", "--max-concurrent-requests", "4",
            ],
            cwd=str(elsewhere),
            env=env,
        )  # fmt: skip
        calls = standin.model_calls("gemini")
    assert "requested = written + dead-lettered: yes" in done.stdout, done.stdout
    retrieval, triplets = read_table(str(out), "text-retrieval"), read_table(str(out), "monolingual-triplet")
    assert len(retrieval) == 2 and len(triplets) == 3
    assert all(row["model"] == "gemini:gemini-test" for row in retrieval + triplets)
    # The brainstorm and generate templates were found as package data: every prompt the stand-in saw was rendered.
    assert len(calls) >= 1 + 2 + 3 and all(call.prompt.strip() for call in calls)
