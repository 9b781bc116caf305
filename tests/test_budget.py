"""Per-request completion-token budgets and string lengths follow what each prompt asks."""

import json

import pytest

from transforms import recipe
from transforms.budget import BudgetSpec, budget_spec, char_limits, expected_words, token_budget_for, tokens_per_word
from transforms.elements import STAGE_BRAINSTORM, Element, PromptRequest, token_budget
from transforms.render import render


def _retrieval(num_words="300", language="en", query_length="5 to 15 words"):
    attributes = (
        ("query_type", "common"),
        ("query_length", query_length),
        ("difficulty", "college"),
        ("clarity", "clear"),
        ("num_words", num_words),
        ("language", language),
    )
    return Element("r", "text-retrieval", "generate", "Given a question, find answers.", attributes)


def _sts(unit="sentence", language="en"):
    attributes = (
        ("unit", unit),
        ("difficulty", "college"),
        ("high_score", "4"),
        ("low_score", "3"),
        ("language", language),
    )
    return Element("s", "monolingual-triplet", "generate", None, attributes)


@pytest.mark.parametrize(
    "length,words",
    [("at least 300 words", 450), ("less than 5 words", 5), ("5 to 15 words", 15), ("sentence", 50), (None, 9)],
)
def test_expected_words(length, words):
    assert expected_words(length, default=9) == words


def test_longer_asks_get_larger_budgets():
    budgets = [
        token_budget_for(_retrieval(n)) for n in recipe.get_task_type("text-retrieval").attribute("num_words").values
    ]
    assert budgets == sorted(budgets) and len(set(budgets)) == len(budgets)
    # Two documents of at least 500 words: room for both, far above a sentence-sized STS reply.
    assert token_budget_for(_retrieval("500")) >= 2 * 500 * tokens_per_word("en")
    assert token_budget_for(_sts("sentence")) < 512 < token_budget_for(_retrieval("500"))
    assert token_budget_for(_sts("phrase")) < token_budget_for(_sts("sentence")) < token_budget_for(_sts("passage"))


def test_scripts_that_take_more_tokens_per_word_get_more():
    assert tokens_per_word("en") < tokens_per_word("ru") < tokens_per_word("hi")
    assert token_budget_for(_retrieval("200", "en")) < token_budget_for(_retrieval("200", "ru"))
    assert token_budget_for(_retrieval("200", "ru")) < token_budget_for(_retrieval("200", "ta"))
    from transforms.budget import tokens_per_char

    assert tokens_per_char("zh-Hans") > tokens_per_char("en")  # CJK budgets per character


def test_bitext_fields_are_budgeted_in_their_own_languages():
    def bitext(source, target):
        attributes = (("unit", "passage"), ("difficulty", "college"), ("high_score", "4"), ("low_score", "2"),
                      ("source_language", source), ("target_language", target))  # fmt: skip
        return Element("b", "bitext-retrieval", "generate", None, attributes)

    # One field in Hindi costs less than two.
    assert token_budget_for(bitext("hi", "en")) < token_budget_for(bitext("en", "hi"))


def test_brainstorm_budget_fits_twenty_one_sentence_tasks():
    budget = token_budget_for(Element("b", "text-retrieval", STAGE_BRAINSTORM))
    assert 20 * 25 <= budget <= 20 * 60


def test_render_sets_the_cap_and_the_backend_bounds_it():
    request = render(_sts(), run_seed=1)
    assert request.max_tokens == token_budget_for(_sts())
    assert token_budget(request, 100) == 100 and token_budget(request, 8192) == request.max_tokens
    assert render(_sts(), 1, budget=BudgetSpec(enabled=False)).max_tokens == 0
    assert token_budget(PromptRequest(*request[:-1], max_tokens=0), 777) == 777


def test_string_lengths_fit_the_ask_and_never_exceed_the_declaration():
    limits = char_limits(_retrieval("50"))
    declared = {f.key: f.max_chars for f in recipe.get_task_type("text-retrieval").outputs}
    assert limits["positive_document"] >= 50 * 1.5 * 6  # "at least 50 words" has room beyond 50
    assert 500 * 1.5 * 6 <= char_limits(_retrieval("500"))["positive_document"] <= declared["positive_document"]
    assert all(limits[k] <= declared[k] for k in declared)
    schema = json.loads(render(_retrieval("50"), 1).schema_json)
    assert schema["properties"]["positive_document"]["maxLength"] == limits["positive_document"]
    assert char_limits(_sts("phrase"))["S1"] < char_limits(_sts("sentence"))["S1"] < char_limits(_sts("passage"))["S1"]


def test_every_declared_maximum_holds_the_longest_ask():
    """max_chars leaves room for what the longest attribute value asks (about 6 characters a word)."""
    for task_type in recipe.TASK_TYPES:
        for field in task_type.outputs:
            if field.length is None:
                continue
            names = [n for n in task_type.attribute_names if "{" + n + "}" in field.length]
            values = [task_type.attribute(n).values for n in names]
            asks = [field.length.format(**dict(zip(names, combo, strict=True))) for combo in _product(values)]
            for ask in asks:
                if ask != "passage":
                    assert field.max_chars >= expected_words(ask, 0) * 6, (task_type.name, field.key, ask)


def _product(values):
    import itertools

    return itertools.product(*values) if values else [()]


def test_gemini_thinking_is_added_or_the_cap_left_to_max_tokens():
    assert budget_spec("embedded") == BudgetSpec()
    assert budget_spec("embedded", None, 8192, n_ctx=4096).ceiling == 4096 - 512
    assert budget_spec("gemini:gemini-2.5-flash", None).enabled is False
    assert budget_spec("gemini:gemini-2.5-flash", 512).extra == 512
    element = _sts()
    assert token_budget_for(element, BudgetSpec(extra=512)) == token_budget_for(element) + 512


@pytest.mark.parametrize("language", ["en", "ru", "hi", "zh-Hans", "th"])
def test_a_reply_that_fills_its_strings_closes_before_its_cap(language):
    """The cap holds every string at its grammar limit, at the script's tokens per character."""
    from transforms.budget import tokens_per_char

    for element in (_retrieval("200", language), _sts("passage", language)):
        needed = sum(char_limits(element).values()) * tokens_per_char(language)
        assert token_budget_for(element) >= needed


def test_a_low_max_tokens_shrinks_the_strings_so_replies_still_close_before_it():
    from transforms.budget import tokens_per_char

    spec = BudgetSpec(ceiling=256)
    element = _retrieval("300")
    limits = char_limits(element, spec)
    assert sum(limits.values()) < sum(char_limits(element).values())
    assert sum(limits.values()) * tokens_per_char("en") <= 256
    assert token_budget_for(element, spec) <= 256 + 8
    schema = json.loads(render(element, 1, budget=spec).schema_json)
    assert schema["properties"]["positive_document"]["maxLength"] == limits["positive_document"]
    assert char_limits(_sts("phrase"), spec) == char_limits(_sts("phrase"))  # fits already: unchanged
