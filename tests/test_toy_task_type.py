"""A seventh task type is one declaration plus its templates: a toy type through the whole graph on the fake model."""

import contextlib
import json

import pytest

from pipelines import generate
from tests.support.fakes import FakeHandler
from tests.support.helpers import read_table
from transforms import recipe
from transforms import render as prompts
from transforms.elements import STAGE_BRAINSTORM, Element
from transforms.quality import checks
from transforms.records import example_fields
from transforms.sampling import SamplingSpec, sample_attributes
from transforms.training import export_rows as export

TOY = recipe.TaskType(
    name="toy-headline-summary",
    brainstorm=True,
    summary="news headline -> one-paragraph summary",
    attributes=(
        recipe.Attribute("tone", ("neutral", "playful"), "Tone of the summary."),
        recipe.Attribute("language", (), "Language of the texts."),
        recipe.Attribute("summary_language", (), "Language of the summary.", differs_from="language"),
    ),
    outputs=(
        recipe.OutputField("headline", "anchor", 300, length="less than 15 words"),
        recipe.OutputField("summary", "positive", 2000, length="at least 40 words", language="summary_language"),
        recipe.OutputField("off_topic", "negative", 2000, length="at least 40 words"),
    ),
    copy_rules=(recipe.CopyRule("headline", "summary"),),
    instruction="Retrieve the summary of a headline.",
)
TEMPLATES = {
    "brainstorm/toy-headline-summary.jinja2": "List {{ num_tasks }} headline summarizing tasks as a JSON array.",
    "generate/toy-headline-summary.jinja2": (
        "Task: {{ task }}\nWrite a {{ tone }} JSON object: headline in {{ language }} (less than 15 words), "
        "summary in {{ summary_language }} (at least 40 words), off_topic in {{ language }} (at least 40 words)."
    ),
}


@contextlib.contextmanager
def toy_type():
    """The test hook: declare TOY and its templates for the duration of a block, then restore the registry."""
    with recipe.register_task_type(TOY), prompts.extra_templates(TEMPLATES):
        yield TOY


def _toy_reply(request):
    element = request.element
    if element.stage == STAGE_BRAINSTORM:
        return json.dumps([f"Given a headline about topic {i}, find its summary." for i in range(4)])
    tag = element.element_id[:8]

    def words(kind):  # distinct per element and per field, so no row duplicates another
        return " ".join(f"{kind}{tag}{i}" for i in range(45))

    return json.dumps(
        {
            "headline": f"Headline {tag} about the harbour",
            "summary": words("s"),
            "off_topic": words("o"),
        }
    )


def test_the_hook_registers_and_restores():
    before = recipe.CATEGORIES
    with toy_type():
        assert recipe.CATEGORIES == (*before, TOY.name)
        assert recipe.get_task_type(TOY.name) is TOY and TOY.name in recipe.BRAINSTORM_CATEGORIES
        with pytest.raises(ValueError, match="already declared"):
            with recipe.register_task_type(TOY):
                pass
    assert recipe.CATEGORIES == before
    with pytest.raises(KeyError):
        recipe.get_task_type(TOY.name)


def test_declaration_drives_sampler_renderer_schema_and_checks():
    with toy_type():
        spec = SamplingSpec(seed=3, languages=(("en", 1.0), ("de", 1.0)))
        for i in range(20):
            element = sample_attributes(Element(f"t{i}", TOY.name, "generate", "Given a headline, summarize."), spec)
            values = dict(element.attributes)
            assert values["language"] != values["summary_language"]  # differs_from, read from the declaration
            request = prompts.render(element, 3)
            assert (
                values["tone"] in request.prompt and recipe.language_name(values["summary_language"]) in request.prompt
            )
            assert json.loads(request.schema_json)["required"] == ["headline", "summary", "off_topic"]
            assert request.max_tokens > 0
        assert checks.check_names(TOY) == (
            "language:headline", "language:summary", "language:off_topic",
            "echo:headline", "echo:summary", "echo:off_topic",
            "length:headline", "length:summary", "length:off_topic",
            "copied:headline->summary",
            "same:headline=summary", "same:headline=off_topic", "same:summary=off_topic",
        )  # fmt: skip


def test_a_toy_type_runs_through_the_whole_graph(tmp_path, capsys):
    out = str(tmp_path / "toy")
    with toy_type():
        code = generate.run(
            [
                "--output", out, "--categories", TOY.name, "--languages", "en,de",
                "--tasks-per-category", "3", "--examples-per-task", "2",
            ],
            handler=FakeHandler(_toy_reply),
        )  # fmt: skip
        assert code == 0
        rows = read_table(out, TOY.name)
        assert len(rows) == 6 and read_table(out, "dead_letter") == []
        for row in rows:
            assert list(row) == [f.name for f in example_fields(TOY)]
            assert row["language"] != row["summary_language"]
            assert row["quality_checks"] and "length:summary" in row["quality_checks"]
            assert not {f for f in row["quality_failures"] if f.startswith(("length", "copied", "same", "echo"))}
            trained = export.training_row(row)
            assert trained["anchor"] == f"Instruct: {row['task']}\nQuery: {row['headline']}"
            assert trained["positive"] == row["summary"] and trained["negative"] == row["off_topic"]
            assert trained["language"] == f"{row['language']}->{row['summary_language']}"
        printed = capsys.readouterr().out
        assert "requested = written + dead-lettered: yes" in printed and TOY.name in printed
