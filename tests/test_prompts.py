"""The prompt templates as the specification: every instruction RECIPE.md lists for a type, in every template of it.

Each ``test_<stage>_<type>_...`` test renders every template of one type with every attribute value and states the
recipe's instructions as ``assert_says`` lines: the phrases given together must occur in one sentence of the prompt.
"""

import re

import jinja2
import jinja2.meta
import pytest

from transforms import recipe
from transforms import render as prompts
from transforms.elements import STAGE_BRAINSTORM, STAGE_GENERATE, Element
from transforms.quality import contamination

TASK = "Given the name of a mountain pass, retrieve travel accounts of crossing it."
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def _sentences(prompt: str) -> list[str]:
    return [" ".join(s.split()).casefold() for s in _SENTENCE_END.split(prompt) if s.strip()]


def assert_says(prompt: str, *phrases: str) -> None:
    """Every phrase occurs, case- and whitespace-insensitively, in one and the same sentence of ``prompt``."""
    wanted = [" ".join(p.split()).casefold() for p in phrases]
    if not any(all(w in sentence for w in wanted) for sentence in _sentences(prompt)):
        raise AssertionError(f"no sentence says all of {phrases!r} in:\n{prompt}")


def assert_never_says(prompt: str, phrase: str) -> None:
    assert " ".join(phrase.split()).casefold() not in " ".join(prompt.split()).casefold(), (phrase, prompt)


def _covering_assignments(task_type):
    """Every value of every attribute at least once (languages: all 100; bitext source and target differ)."""
    value_lists = []
    for attr in task_type.attributes:
        if attr.name == "target_language":
            value_lists.append(list(reversed(recipe.LANGUAGES)))
        elif attr.is_language:
            value_lists.append(list(recipe.LANGUAGES))
        else:
            value_lists.append(list(attr.values))
    for i in range(max(len(v) for v in value_lists)):
        yield tuple((a.name, v[i % len(v)]) for a, v in zip(task_type.attributes, value_lists, strict=True))


def _shown(task_type, attributes) -> dict:
    """Attribute values as the prompt shows them (languages by English name)."""
    return {
        name: recipe.language_name(value) if task_type.attribute(name).is_language else value
        for name, value in attributes
    }


def _generate_templates(category=None):
    return [
        pytest.param(t.name, path, id=prompts_id(path))
        for t in recipe.TASK_TYPES
        if category in (None, t.name)
        for path in t.template_paths
    ]


def _brainstorm_templates(category=None):
    return [
        pytest.param(t.name, path, id=prompts_id(path))
        for t in recipe.TASK_TYPES
        if category in (None, t.name)
        for path in t.brainstorm_template_paths
    ]


def prompts_id(path: str) -> str:
    return path.removesuffix(".jinja2")


def renderings(category: str, path: str):
    """(shown attribute values, prompt) for template ``path`` rendered with every attribute value."""
    task_type = recipe.get_task_type(category)
    for attributes in _covering_assignments(task_type):
        element = Element("id-1", category, STAGE_GENERATE, TASK if task_type.brainstorm else None, attributes)
        yield _shown(task_type, attributes), prompts.render_template(path, element)


def brainstorm_prompt(category: str, path: str) -> str:
    return prompts.render_template(path, Element("b", category, STAGE_BRAINSTORM))


# ---------------------------------------------------------------------------------------------------------------
# Brainstorm: about 20 distinct one-sentence tasks, nothing else, be creative; each category's rules and examples.


@pytest.mark.parametrize("category,path", _brainstorm_templates())
def test_brainstorm_asks_for_about_20_distinct_one_sentence_tasks_and_nothing_else(category, path):
    prompt = brainstorm_prompt(category, path)
    assert_says(prompt, f"about {recipe.BRAINSTORM_MAX_TASKS}", "distinct")
    assert_says(prompt, "one sentence")
    assert_says(prompt, "JSON array of strings", "nothing else")
    assert_says(prompt, "creative")


@pytest.mark.parametrize("category,path", _brainstorm_templates("text-retrieval"))
def test_brainstorm_retrieval_each_task_names_query_and_documents_and_is_broad(category, path):
    prompt = brainstorm_prompt(category, path)
    assert_says(prompt, "what the query is", "what the wanted documents are")
    assert_says(prompt, "wide range of queries", "not too specific")
    assert_says(prompt, "weather")  # the paper's example kinds: a short weather-keyword web query,
    assert_says(prompt, "FAQ", "children's nutrition")  # and an FAQ-style question on children's nutrition


@pytest.mark.parametrize("category,path", _brainstorm_templates("text-classification"))
def test_brainstorm_classification_spans_diverse_domains_and_task_types(category, path):
    prompt = brainstorm_prompt(category, path)
    assert_says(prompt, "diverse range of domains and task types")


@pytest.mark.parametrize("category,path", _brainstorm_templates("text-matching-short"))
def test_brainstorm_short_matching_is_very_short_related_not_paraphrases(category, path):
    prompt = brainstorm_prompt(category, path)
    assert_says(prompt, "query", "target", "very short", "one or two sentences, or a phrase")
    assert_says(prompt, "not paraphrase")
    assert_says(prompt, "title", "cite")  # a paper title -> titles of the papers citing it
    assert_says(prompt, "word", "definition")
    assert_says(prompt, "name", "occupation or", "achievement")
    for drift in ("same meaning", "find a paraphrase", "expresses the same idea"):
        assert_never_says(prompt, drift)


@pytest.mark.parametrize("category,path", _brainstorm_templates("text-matching-long"))
def test_brainstorm_long_matching_queries_are_long_documents_related_not_paraphrases(category, path):
    prompt = brainstorm_prompt(category, path)
    assert_says(prompt, "queries are long documents")
    assert_says(prompt, "not paraphrase")
    assert_says(prompt, "argument", "opposite arguments")
    assert_says(prompt, "long business proposal", "competing strategies", "same industry")
    for drift in ("reports the same event", "equivalent terms", "same meaning"):
        assert_never_says(prompt, drift)


@pytest.mark.parametrize("category,path", _brainstorm_templates())
def test_brainstorm_examples_restate_no_evaluation_set_instruction(category, path):
    for line in brainstorm_prompt(category, path).splitlines():
        assert contamination.contaminated(line) is None, line
    assert_never_says(brainstorm_prompt(category, path), "support or refute")  # SciFact's instruction


# ---------------------------------------------------------------------------------------------------------------
# Generate: every instruction of RECIPE.md, per type, in every template, for every attribute value.


@pytest.mark.parametrize("category,path", _generate_templates("text-retrieval"))
def test_generate_retrieval(category, path):
    for a, prompt in renderings(category, path):
        assert_says(prompt, TASK)
        assert_says(prompt, "query", a["query_type"], a["query_length"], a["clarity"])
        assert_says(prompt, "queries", "diverse in topic")
        assert_says(prompt, "document", f"at least {a['num_words']} words")
        assert_says(prompt, "documents", "written independently of the query")
        assert_says(prompt, "documents", "do not copy the query")
        assert_says(prompt, "positive_document", "off-topic")
        assert_says(prompt, "hard_negative_document", "some useful information", "less useful or less complete")
        assert_says(prompt, "document", "explains why it is", "relevant")
        assert_says(prompt, "the query and the documents", f"{a['difficulty']} level of education")
        assert_says(prompt, f"in {a['language']}")
        assert_says(prompt, "JSON object", "nothing else")
        assert_never_says(prompt, "about " + a["num_words"])  # the paper says "at least"
        assert_never_says(prompt, "shares some of its words")  # the hard negative is less useful, not word-alike


@pytest.mark.parametrize("category,path", _generate_templates("text-classification"))
def test_generate_classification(category, path):
    for a, prompt in renderings(category, path):
        assert_says(prompt, TASK)
        assert_says(prompt, "input_text", f"{a['num_words']} words", "varied in expression")
        assert_says(prompt, "label", "correct label")
        assert_says(prompt, "misleading_label", "valid label of this task", "less well than the")
        assert_says(prompt, "neither", "label", "misleading_label", "input_text")
        assert_says(prompt, a["clarity"], f"{a['difficulty']} level of education")
        assert_says(prompt, "input_text", a["clarity"])
        assert_says(prompt, f"in {a['language']}")
        assert_says(prompt, "JSON object", "nothing else")


@pytest.mark.parametrize("category,path", _generate_templates("text-matching-short"))
def test_generate_short_matching(category, path):
    for a, prompt in renderings(category, path):
        assert_says(prompt, TASK)
        assert_says(prompt, "very short", "a sentence or a phrase")
        assert_says(prompt, "share few words")
        assert_says(prompt, "independent of each other")
        assert_says(prompt, f"in {a['language']}")
        assert_says(prompt, "JSON object", "nothing else")


@pytest.mark.parametrize("category,path", _generate_templates("text-matching-long"))
def test_generate_long_matching(category, path):
    for a, prompt in renderings(category, path):
        assert_says(prompt, TASK)
        assert_says(prompt, "at least 300 words")
        assert_says(prompt, "share few words")
        assert_says(prompt, "independent of each other")
        assert_says(prompt, f"in {a['language']}")
        assert_says(prompt, "JSON object", "nothing else")
        assert_never_says(prompt, "at least one paragraph")


@pytest.mark.parametrize("category,path", _generate_templates("monolingual-triplet"))
def test_generate_sts(category, path):
    for a, prompt in renderings(category, path):
        assert_says(prompt, f"three {a['unit']}s", f"in {a['language']}")
        assert_says(prompt, "all three", "share some words")
        assert_says(prompt, '"S1" and "S2"', a["high_score"])
        assert_says(prompt, '"S1" and "S3"', a["low_score"])
        assert_says(prompt, "1 to 5")
        assert_says(prompt, f"{a['difficulty']} level of education")
        assert_says(prompt, "vary in topic and length")
        assert_says(prompt, "JSON object", "nothing else")


@pytest.mark.parametrize("category,path", _generate_templates("bitext-retrieval"))
def test_generate_bitext(category, path):
    for a, prompt in renderings(category, path):
        assert_says(prompt, '"S1"', f"in {a['source_language']}")
        assert_says(prompt, '"S2" and "S3"', f"in {a['target_language']}")
        assert_says(prompt, '"S2" and "S3"', "share some words")
        assert_says(prompt, '"S2"', a["high_score"])
        assert_says(prompt, '"S3"', a["low_score"])
        assert_says(prompt, "1 to 5")
        assert_says(prompt, '"S3"', "grammatical and fluent", "keyword or number", "omits or adds information")
        assert_says(prompt, '"S1"', f"{a['difficulty']} level of education")
        assert_says(prompt, '"S1"', "varies in topic and length")
        assert_says(prompt, "JSON object", "nothing else")


# ---------------------------------------------------------------------------------------------------------------
# Every template: the parser's keys, every attribute, every value, StrictUndefined.


@pytest.mark.parametrize("category,path", _generate_templates())
def test_template_asks_for_exactly_the_parser_keys_and_uses_every_attribute(category, path):
    task_type = recipe.get_task_type(category)
    source = prompts.template_source(path)
    variables = jinja2.meta.find_undeclared_variables(prompts.environment().parse(source))
    assert variables == set(task_type.attribute_names) | ({"task"} if task_type.brainstorm else set())
    assert set(re.findall(r'"([A-Za-z0-9_]+)"', source)) == set(task_type.output_keys)


@pytest.mark.parametrize("category,path", _brainstorm_templates())
def test_brainstorm_template_uses_only_the_task_count(category, path):
    source = prompts.template_source(path)
    assert jinja2.meta.find_undeclared_variables(prompts.environment().parse(source)) == {"num_tasks"}
    assert not re.findall(r'"([A-Za-z0-9_]+)"', source)  # no JSON keys: the reply is an array of strings


@pytest.mark.parametrize("category,path", _generate_templates())
def test_every_sampled_value_appears_in_the_prompt(category, path):
    task_type = recipe.get_task_type(category)
    for shown, prompt in renderings(category, path):
        for name, value in shown.items():
            assert value in prompt, (name, value)
        if task_type.brainstorm:
            assert TASK in prompt
        assert "{{" not in prompt and "}}" not in prompt


@pytest.mark.parametrize("category,path", _generate_templates())
def test_missing_variable_is_an_error(category, path):
    task_type = recipe.get_task_type(category)
    first = next(_covering_assignments(task_type))
    element = Element("id", category, STAGE_GENERATE, TASK if task_type.brainstorm else None, first[:-1])
    with pytest.raises(jinja2.UndefinedError):
        prompts.render_template(path, element)


def test_render_everything_covers_every_template_file():
    """Every template file under prompts/ is declared, so every one is rendered by the tests above."""
    shipped = set(prompts.environment().list_templates(extensions=["jinja2"]))
    declared = {p for t in recipe.TASK_TYPES for p in (*t.template_paths, *t.brainstorm_template_paths)}
    assert shipped == declared
    for t in recipe.TASK_TYPES:
        assert len(t.template_paths) >= 2 and len(set(t.template_paths)) == len(t.template_paths)
        if t.brainstorm:
            assert len(t.brainstorm_template_paths) >= 2
        else:
            assert t.brainstorm_template_paths == ()


@pytest.mark.parametrize("category", recipe.CATEGORIES)
def test_templates_of_a_type_differ_in_framing(category):
    task_type = recipe.get_task_type(category)
    for paths in (task_type.template_paths, task_type.brainstorm_template_paths):
        first_lines = {prompts.template_source(p).splitlines()[0] for p in paths}
        assert len(first_lines) == len(paths)
        hashes = {prompts.template_sha256(p) for p in paths}
        assert len(hashes) == len(paths) and all(len(h) == 16 for h in hashes)


def test_render_records_the_drawn_template_and_its_hash():
    element = Element("id-7", "text-matching-long", STAGE_GENERATE, TASK, (("language", "de"),))
    request = prompts.render(element, run_seed=3)
    assert request.template in recipe.get_task_type("text-matching-long").template_paths
    assert request.template_sha256 == prompts.template_sha256(request.template)
    assert request.prompt == prompts.render_template(request.template, element)


def test_package_data_ships_every_template_and_the_evaluation_instructions():
    import pathlib

    root = pathlib.Path(__file__).parent.parent
    setup = (root / "setup.py").read_text(encoding="utf-8")
    block = re.search(r'package_data=\{\s*"prompts":\s*\[(.*?)\]', setup, re.S).group(1)
    matched = {
        p.relative_to(root / "prompts").as_posix()
        for g in re.findall(r'"([^"]+)"', block)
        for p in (root / "prompts").glob(g)
    }
    shipped = [*prompts.environment().list_templates(extensions=["jinja2"]), contamination.DATA_FILE]
    for name in shipped:
        assert name in matched, name
