"""Fault injection: the whole pipeline against a local OpenAI-compatible stand-in that fails at configured rates.

For every mix: requested = written + dead-lettered, no example id twice, every dead letter has a reason, and
transient faults within the retry budget leave no dead letter at all. Secrets never leak (canary key).
"""

import hashlib
import json
import logging

import pytest

from pipelines import generate
from tests.support.helpers import read_all
from tests.support.standins import Fault, StandIn
from transforms import recipe

SYMMETRIC = ["--categories", "monolingual-triplet,bitext-retrieval", "--examples-per-symmetric-type", "15"]
TABLES = [*recipe.CATEGORIES, "dead_letter"]
CANARY = "sk-canary-7f3a9c1e5b"


def rate(fraction: float, salt: str):
    """A predicate choosing about ``fraction`` of the prompts, the same ones on every call."""

    def chosen(call) -> bool:
        digest = hashlib.sha256(f"{salt}\x1f{call.prompt}".encode()).digest()
        return int.from_bytes(digest[:4], "big") / 2**32 < fraction

    return chosen


def _run(tmp_path, standin, extra=(), name="out"):
    out = str(tmp_path / name)
    argv = [
        "--output",
        out,
        "--model",
        "openai:standin-model",
        "--api-base",
        standin.openai_base_url,
        "--api-key-env",
        "EMBEDGEN_FAULT_KEY",
        "--request-timeout",
        "1",
        "--max-request-retries",
        "4",
        "--max-concurrent-requests",
        "8",
        *extra,
    ]
    code = generate.run(argv)
    records = read_all(out, TABLES)
    rows = [r for c in recipe.CATEGORIES for r in records[c]]
    return code, rows, records["dead_letter"]


def _check_accounting(code, rows, dead, requested):
    ids = [r["example_id"] for r in rows] + [d["element_id"] for d in dead if d["stage"] == "generate"]
    assert len(ids) == len(set(ids)), "an example id appears twice"
    assert len(ids) == requested, f"requested {requested}, accounted for {len(ids)}"
    assert code == 0, "the run's own summary found requested != written + dead-lettered"
    for d in dead:
        assert d["reason"] and d["detail"] and d["failures"] and d["prompt"]


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv("EMBEDGEN_FAULT_KEY", CANARY)


TRANSIENT_MIX = [
    Fault("429", match=rate(0.10, "a"), times=1),
    Fault("500", match=rate(0.08, "b"), times=1),
    Fault("503", match=rate(0.08, "c"), times=1),
    Fault("drop", match=rate(0.05, "d"), times=1),
    Fault("hang", match=rate(0.04, "e"), times=1),
]
MALFORMED_ONCE = [
    Fault("non_json", match=rate(0.06, "f"), times=1),
    Fault("truncated", match=rate(0.06, "g"), times=1),
    Fault("missing_keys", match=rate(0.06, "h"), times=1),
    Fault("empty", match=rate(0.06, "i"), times=1),
]


def test_transient_faults_within_the_budget_leave_no_dead_letters(tmp_path, key):
    with StandIn(faults=TRANSIENT_MIX + MALFORMED_ONCE, hang_seconds=5) as standin:
        code, rows, dead = _run(tmp_path, standin, SYMMETRIC)
        faults = [c.fault for c in standin.model_calls() if c.fault]
    assert len({"429", "500", "503", "drop", "hang"} & set(faults)) >= 3, f"the mix injected too few faults: {faults}"
    assert {"non_json", "truncated", "missing_keys", "empty"} & set(faults)
    _check_accounting(code, rows, dead, requested=30)
    assert dead == [] and len(rows) == 30


@pytest.mark.parametrize(
    "faults,reasons",
    [
        ([Fault("non_json", match=rate(0.2, "j"))], {"not_json"}),
        ([Fault("truncated", match=rate(0.2, "k"))], {"truncated_json"}),
        ([Fault("missing_keys", match=rate(0.2, "l"))], {"missing_keys"}),
        ([Fault("empty", match=rate(0.2, "m"))], {"empty_reply"}),
        ([Fault("400", match=rate(0.2, "n"))], {"model_error"}),
        ([Fault("503", match=rate(0.2, "o"))], {"model_error"}),  # beyond the retry budget
    ],
    ids=["non_json", "truncated", "missing_keys", "empty", "400", "503_forever"],
)
def test_persistent_faults_become_dead_letters_with_reasons(tmp_path, key, faults, reasons):
    with StandIn(faults=faults) as standin:
        code, rows, dead = _run(
            tmp_path, standin, [*SYMMETRIC, "--max-parse-retries", "1", "--max-request-retries", "1"]
        )
    _check_accounting(code, rows, dead, requested=30)
    assert dead, "a persistent fault must dead-letter its elements"
    assert {d["reason"] for d in dead} == reasons
    if faults[0].kind == "400":
        assert all(d["attempts"] == 1 and "400" in d["detail"] for d in dead)  # a 400 is never retried


def test_all_six_categories_with_a_mixed_fault_load(tmp_path, key):
    mix = (
        TRANSIENT_MIX + MALFORMED_ONCE + [Fault("non_json", match=rate(0.05, "p")), Fault("400", match=rate(0.03, "q"))]
    )
    argv = [
        "--tasks-per-category",
        "3",
        "--examples-per-task",
        "2",
        "--examples-per-symmetric-type",
        "4",
        "--max-parse-retries",
        "1",
    ]
    with StandIn(faults=mix, hang_seconds=5) as standin:
        code, rows, dead = _run(tmp_path, standin, argv)
    generated_dead = [d for d in dead if d["stage"] == "generate"]
    brainstorm_dead = {d["category"] for d in dead if d["stage"] == "brainstorm"}
    tasks = {c: 0 if c in brainstorm_dead else 3 for c in recipe.BRAINSTORM_CATEGORIES}
    requested = sum(n * 2 for n in tasks.values()) + 2 * 4
    _check_accounting(code, rows, generated_dead, requested)


def test_the_api_key_never_appears_in_logs_rows_dead_letters_or_summary(tmp_path, key, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    faults = [Fault("400", match=rate(0.3, "r")), Fault("500", match=rate(0.3, "s"), times=1)]
    with StandIn(faults=faults) as standin:
        code, rows, dead = _run(tmp_path, standin, SYMMETRIC)
        sent = [c.headers.get("authorization") for c in standin.model_calls()]
    assert f"Bearer {CANARY}" in sent  # the key was really used
    printed = capsys.readouterr()
    assert CANARY not in printed.out and CANARY not in printed.err
    assert CANARY not in caplog.text
    assert rows and dead
    assert CANARY not in json.dumps(rows + dead, default=str)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path


def test_a_key_pasted_into_the_flag_is_not_echoed(tmp_path, capsys):
    # --api-key-env takes the NAME of a variable; a user who pastes the key itself must not see it echoed.
    code = generate.run(
        ["--output", str(tmp_path / "o"), "--model", "openai:m", "--api-base", "ftp://nowhere", "--api-key-env", CANARY]
    )
    captured = capsys.readouterr()
    assert code == 2
    assert "--api-base" in captured.err
    assert CANARY not in captured.err and CANARY not in captured.out
