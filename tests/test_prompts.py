import re

import jinja2
import jinja2.meta
import pytest

from transforms import recipe
from transforms import render as prompts
from transforms.elements import STAGE_BRAINSTORM, Element


def _all_assignments(task_type):
    """Every value of every attribute, each at least once (a covering set of assignments)."""
    value_lists = []
    for attr in task_type.attributes:
        if attr.name == "source_language":
            value_lists.append(list(recipe.LANGUAGES))
        elif attr.name == "target_language":
            value_lists.append(list(reversed(recipe.LANGUAGES)))
        elif attr.is_language:
            value_lists.append(list(recipe.LANGUAGES))
        else:
            value_lists.append(list(attr.values))
    longest = max(len(v) for v in value_lists)
    for i in range(longest):
        yield tuple(
            (a.name, values[i % len(values)]) for a, values in zip(task_type.attributes, value_lists, strict=True)
        )


@pytest.mark.parametrize("task_type", recipe.TASK_TYPES, ids=lambda t: t.name)
def test_every_value_appears_in_the_rendered_prompt(task_type):
    for attributes in _all_assignments(task_type):
        task = (
            "Given a scientific claim, retrieve documents that support or refute it." if task_type.brainstorm else None
        )
        element = Element("id-1", task_type.name, "generate", task, attributes)
        request = prompts.render(element, run_seed=1)
        for name, value in attributes:
            shown = recipe.language_name(value) if task_type.attribute(name).is_language else value
            assert shown in request.prompt, (name, value)
        if task:
            assert task in request.prompt
        assert "{{" not in request.prompt and "}}" not in request.prompt


@pytest.mark.parametrize("task_type", recipe.TASK_TYPES, ids=lambda t: t.name)
def test_template_uses_every_attribute_and_asks_for_exactly_the_parser_keys(task_type):
    env = prompts.environment()
    source = prompts.template_source(task_type.template)
    variables = jinja2.meta.find_undeclared_variables(env.parse(source))
    expected = set(task_type.attribute_names) | ({"task"} if task_type.brainstorm else set())
    assert variables == expected
    asked = set(re.findall(r'"([A-Za-z0-9_]+)"', source))
    assert asked == set(task_type.output_keys)


@pytest.mark.parametrize("category", recipe.BRAINSTORM_CATEGORIES)
def test_brainstorm_templates_ask_for_a_json_array(category):
    request = prompts.render(Element("b", category, STAGE_BRAINSTORM), run_seed=1)
    assert "JSON array" in request.prompt and str(recipe.BRAINSTORM_MAX_TASKS) in request.prompt


def test_missing_variable_is_an_error():
    element = Element("id", "text-retrieval", "generate", "a task", (("language", "en"),))
    with pytest.raises(jinja2.UndefinedError):
        prompts.render(element, run_seed=1)


def test_template_hash_is_stable_and_short():
    assert prompts.template_sha256("generate/text-retrieval.jinja2") == prompts.template_sha256(
        "generate/text-retrieval.jinja2"
    )
    assert len(prompts.template_sha256("generate/bitext-retrieval.jinja2")) == 16


def test_templates_ship_for_every_category():
    names = set(prompts.environment().list_templates(extensions=["jinja2"]))
    for t in recipe.TASK_TYPES:
        assert t.template in names
        if t.brainstorm:
            assert t.brainstorm_template in names
    assert len(names) == 10
