"""--mix paper --examples N: the paper's category shares, derived sizes, overrides and bad combinations."""

import json
import re

import pytest

from pipelines import generate
from pipelines.options import parse_args, to_config
from tests.support.fakes import FakeHandler
from transforms.elements import STAGE_BRAINSTORM
from transforms.mix import PAPER_MIX, SizePlan

PAPER_SHARES = {c: n / sum(PAPER_MIX.values()) for c, n in PAPER_MIX.items()}


def _plan(*argv) -> SizePlan:
    return to_config(parse_args(["--model", "embedded", *argv])[0]).plan


def test_paper_mix_splits_the_total_in_the_papers_shares():
    plan = _plan("--mix", "paper", "--examples", "600")
    requested = plan.requested()
    total = sum(requested.values())
    assert 600 <= total <= 600 + len(PAPER_MIX)  # at most one row over per brainstormed category
    for category, share in PAPER_SHARES.items():
        assert abs(requested[category] / total - share) < 0.02, category
    rounds, tasks, per_task = dict(plan.rounds), dict(plan.tasks), dict(plan.examples_per_task)
    assert per_task["text-retrieval"] == 2 and tasks["text-retrieval"] == 99  # 198 rows, 2 per task
    assert rounds["text-retrieval"] * 20 >= tasks["text-retrieval"]  # ~20 tasks per brainstorm call
    assert dict(plan.symmetric) == {"monolingual-triplet": 117, "bitext-retrieval": 105}


def test_explicit_size_flags_override_the_mix():
    plan = _plan("--mix", "paper", "--examples", "600", "--examples-per-task", "3", "--brainstorm-rounds", "2")
    assert set(dict(plan.examples_per_task).values()) == {3} and set(dict(plan.rounds).values()) == {2}
    assert dict(plan.tasks)["text-retrieval"] == 66
    plan = _plan("--mix", "paper", "--examples", "600", "--examples-per-symmetric-type", "5")
    assert dict(plan.symmetric) == {"monolingual-triplet": 5, "bitext-retrieval": 5}


def test_mix_over_fewer_categories_renormalizes():
    plan = _plan("--mix", "paper", "--examples", "100", "--categories", "monolingual-triplet,bitext-retrieval")
    assert dict(plan.symmetric) == {"monolingual-triplet": 53, "bitext-retrieval": 47}


def test_without_mix_the_size_flags_apply_to_every_category():
    plan = _plan("--tasks-per-category", "3")
    assert set(dict(plan.tasks).values()) == {3} and set(dict(plan.symmetric).values()) == {2}
    assert plan.target == () and plan.total is None


@pytest.mark.parametrize(
    "argv,flag",
    [
        (["--examples", "600"], "--examples"),
        (["--mix", "paper"], "--mix paper needs --examples"),
        (["--mix", "paper", "--examples", "10"], "--examples 10 is too small"),
        (["--mix", "paper", "--examples", "0"], "--examples"),
        (["--mix", "paper", "--examples", "600", "--tasks-per-category", "0"], "--tasks-per-category"),
        (["--brainstorm-rounds", "0"], "--brainstorm-rounds"),
    ],
)
def test_bad_combinations_exit_2_naming_the_flag(tmp_path, capsys, argv, flag):
    out = tmp_path / "out"
    code = generate.run(["--output", str(out), *argv], handler=FakeHandler())
    assert code == 2
    assert flag in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


def test_unknown_mix_exits_2_with_the_allowed_values(capsys):
    with pytest.raises(SystemExit) as info:
        parse_args(["--mix", "uniform"])
    assert info.value.code == 2 and "paper" in capsys.readouterr().err


def _many_tasks(request):
    """20 distinct tasks per brainstorm call (by element id), valid examples otherwise."""
    element = request.element
    if element.stage == STAGE_BRAINSTORM:
        return json.dumps(
            [f"Given need {element.element_id[:10]}-{i} of {element.category}, find it." for i in range(20)]
        )
    from tests.support.fakes import valid_reply

    return valid_reply(request)


def test_generate_with_the_paper_mix_prints_requested_counts_in_the_papers_shares(tmp_path, capsys):
    code = generate.run(
        ["--output", str(tmp_path / "mix"), "--mix", "paper", "--examples", "600", "--task-dedup-threshold", "1"],
        handler=FakeHandler(_many_tasks),
    )
    assert code == 0
    printed = capsys.readouterr().out
    requested = {}
    for category in PAPER_MIX:
        match = re.search(rf"^{category}\s+(\d+)\s+(\d+)\s+(\d+)$", printed, re.MULTILINE)
        assert match, category
        requested[category] = int(match.group(1))
    total = sum(requested.values())
    for category, share in PAPER_SHARES.items():
        assert abs(requested[category] / total - share) < 0.02, (category, requested)
    assert "category mix (--mix, --examples 600)" in printed
    line = next(line for line in printed.splitlines() if line.strip().startswith("text-retrieval") and "%" in line)
    assert line.split()[1:] == ["32.9%", "33.0%"]
