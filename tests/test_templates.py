"""Template choice per element: a reproducible, roughly uniform draw; --template pinning and its validation."""

import collections

import pytest

from pipelines import generate
from pipelines.options import parse_args, to_config
from tests.support.fakes import FakeHandler, valid_reply
from tests.support.helpers import read_all, read_table
from transforms import recipe, templates
from transforms import render as prompts
from transforms.config import ConfigError
from transforms.elements import STAGE_BRAINSTORM, STAGE_GENERATE, Element, element_rng
from transforms.sampling import SamplingSpec, sample_attributes

SMALL = ["--tasks-per-category", "3", "--examples-per-task", "2", "--examples-per-symmetric-type", "4"]


def _element(i: int, category: str = "text-retrieval", stage: str = STAGE_GENERATE) -> Element:
    return Element(f"element-{i:05d}", category, stage, "a task" if stage == STAGE_GENERATE else None)


def test_draw_is_reproducible_and_depends_on_seed_and_element_only():
    draws = [templates.choose_template(_element(i), run_seed=7) for i in range(200)]
    assert draws == [templates.choose_template(_element(i), run_seed=7) for i in range(200)]
    assert draws[::-1] == [templates.choose_template(_element(i), run_seed=7) for i in reversed(range(200))]
    assert draws != [templates.choose_template(_element(i), run_seed=8) for i in range(200)]


def test_draw_uses_its_own_rng_purpose_and_leaves_the_attributes_alone():
    spec = SamplingSpec(seed=7)
    element = _element(3)
    before = sample_attributes(element, spec)
    templates.choose_template(element, run_seed=7)
    assert sample_attributes(element, spec) == before
    paths = recipe.get_task_type("text-retrieval").template_paths
    expected = element_rng(7, element.element_id, templates.TEMPLATE_PURPOSE).choice(paths)
    assert templates.choose_template(element, run_seed=7) == expected


@pytest.mark.parametrize(
    "category,stage",
    [(t.name, STAGE_GENERATE) for t in recipe.TASK_TYPES]
    + [(t.name, STAGE_BRAINSTORM) for t in recipe.TASK_TYPES if t.brainstorm],
)
def test_draw_is_roughly_uniform(category, stage):
    n = 3000
    counts = collections.Counter(templates.choose_template(_element(i, category, stage), run_seed=1) for i in range(n))
    paths = templates.template_paths(recipe.get_task_type(category), stage)
    assert set(counts) == set(paths)
    expected = n / len(paths)
    # chi-square with len(paths)-1 <= 2 degrees of freedom: 13.8 is its 0.999 quantile
    assert sum((c - expected) ** 2 / expected for c in counts.values()) < 13.8


def test_pinned_template_is_always_used_for_its_stage_and_category_only():
    choice = templates.template_choice("generate/text-retrieval/checklist,brainstorm/text-retrieval/scenario")
    for i in range(50):
        assert templates.choose_template(_element(i), 1, choice) == "generate/text-retrieval/checklist.jinja2"
        brainstorm = _element(i, stage=STAGE_BRAINSTORM)
        assert templates.choose_template(brainstorm, 1, choice) == "brainstorm/text-retrieval/scenario.jinja2"
    others = {templates.choose_template(_element(i, "text-classification"), 1, choice) for i in range(50)}
    assert len(others) > 1  # unpinned (stage, category) pairs still draw


@pytest.mark.parametrize(
    "value,message",
    [
        ("checklist", "unknown template 'checklist'"),
        ("generate/text-retrieval/nope", "allowed: brainstorm/text-retrieval/brief"),
        ("brainstorm/monolingual-triplet/brief", "unknown template"),
        ("generate/text-retrieval/brief,generate/text-retrieval/checklist", "at most one per stage and category"),
    ],
)
def test_bad_template_names_are_config_errors_naming_the_flag_and_the_allowed_names(value, message):
    with pytest.raises(ConfigError, match="--template") as err:
        templates.template_choice(value)
    assert message in str(err.value)


def test_template_of_an_unselected_category_is_refused():
    with pytest.raises(ConfigError, match="--categories"):
        to_config(parse_args(["--categories", "text-retrieval", "--template", "generate/bitext-retrieval/brief"])[0])


def test_template_flag_accepts_the_recorded_file_name_and_is_in_help(capsys):
    choice = templates.template_choice("generate/text-retrieval/brief.jinja2")
    assert choice.pinned_map == {(STAGE_GENERATE, "text-retrieval"): "generate/text-retrieval/brief.jinja2"}
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--template" in out and "brief, checklist, scenario" in out


def test_bad_template_exits_2_before_any_model_call(tmp_path, capsys):
    calls = []

    def reply(request):
        calls.append(request)
        return valid_reply(request)

    out = tmp_path / "bad"
    code = generate.run(["--output", str(out), *SMALL, "--template", "generate/text-retrieval/x"], FakeHandler(reply))
    assert code == 2
    assert calls == [] and not out.exists()
    err = capsys.readouterr().err
    assert "--template" in err and "generate/text-retrieval/checklist" in err


def _first_attempt_fails(request):
    if request.element.stage == STAGE_BRAINSTORM or request.attempt > 0:
        return valid_reply(request)
    return "not json"


def test_rows_record_their_drawn_template_and_a_reask_keeps_it(tmp_path):
    out = str(tmp_path / "run")
    assert generate.run(["--output", out, *SMALL, "--max-parse-retries", "1"], FakeHandler(_first_attempt_fails)) == 0
    rows = [r for rows in read_all(out, recipe.CATEGORIES).values() for r in rows]
    assert rows and all(r["attempts"] == 2 for r in rows)  # every row was re-asked once
    for row in rows:
        element = Element(row["example_id"], row["category"], STAGE_GENERATE)
        assert row["template"] == templates.choose_template(element, run_seed=42)
        assert row["template_sha256"] == prompts.template_sha256(row["template"])
    assert len({r["template"] for r in rows}) > len(recipe.CATEGORIES)  # more than one template per type in use


def test_pinned_template_is_used_by_every_row_of_its_category(tmp_path):
    out = str(tmp_path / "pinned")
    pin = "generate/text-matching-short/scenario,generate/monolingual-triplet/checklist"
    args = ["--output", out, *SMALL, "--categories", "text-matching-short,monolingual-triplet", "--template", pin]
    assert generate.run(args, FakeHandler()) == 0
    short = read_table(out, "text-matching-short")
    sts = read_table(out, "monolingual-triplet")
    assert len(short) == 6 and len(sts) == 4
    assert {r["template"] for r in short} == {"generate/text-matching-short/scenario.jinja2"}
    assert {r["template"] for r in sts} == {"generate/monolingual-triplet/checklist.jinja2"}
