import math

import pytest

from transforms import recipe


def test_language_pool_is_the_100_xlmr_languages():
    assert len(recipe.LANGUAGES) == 100
    assert len(set(recipe.LANGUAGES.values())) == 100


def test_default_weights():
    w = recipe.DEFAULT_LANGUAGE_WEIGHTS
    assert math.isclose(sum(w.values()), 1.0)
    assert w["en"] == 0.431
    high = [c for c, v in w.items() if v == 0.029]
    assert sorted(high) == sorted(["ar", "zh-Hans", "nl", "fr", "de", "id", "it", "ja", "fa", "pl", "pt", "ru", "es"])
    rest = {v for c, v in w.items() if c != "en" and c not in high}
    assert len(rest) == 1 and math.isclose(rest.pop() * 86, 1 - 0.431 - 13 * 0.029)


@pytest.mark.parametrize(
    "name,brainstorm,keys",
    [
        ("text-retrieval", True, ("user_query", "positive_document", "hard_negative_document")),
        ("text-classification", True, ("input_text", "label", "misleading_label")),
        ("text-matching-short", True, ("input", "positive_document")),
        ("text-matching-long", True, ("input", "positive_document")),
        ("monolingual-triplet", False, ("S1", "S2", "S3")),
        ("bitext-retrieval", False, ("S1", "S2", "S3")),
    ],
)
def test_task_types_match_the_recipe(name, brainstorm, keys):
    t = recipe.get_task_type(name)
    assert t.brainstorm is brainstorm
    assert t.output_keys == keys
    schema = t.json_schema()
    assert schema["required"] == list(keys)
    assert all(p["maxLength"] > 0 and p["minLength"] == 1 for p in schema["properties"].values())


def test_attribute_values_match_the_recipe():
    r = recipe.get_task_type("text-retrieval")
    assert r.attribute("num_words").values == ("50", "100", "200", "300", "400", "500")
    assert r.attribute("query_length").values == ("less than 5 words", "5 to 15 words", "at least 10 words")
    assert recipe.get_task_type("monolingual-triplet").attribute("low_score").values == ("2.5", "3", "3.5")
    assert recipe.get_task_type("bitext-retrieval").attribute("low_score").values == ("1.5", "2", "2.5")
    assert recipe.get_task_type("monolingual-triplet").attribute("difficulty").values == (
        "elementary school",
        "high school",
        "college",
    )
    assert recipe.get_task_type("text-matching-short").attribute_names == ("language",)


def test_roles():
    assert recipe.get_task_type("text-classification").role("negative") == "misleading_label"
    assert recipe.get_task_type("text-matching-long").role("negative") is None
    assert recipe.get_task_type("bitext-retrieval").role("anchor") == "S1"


def test_language_lookup():
    assert recipe.language_code("Swahili") == "sw"
    assert recipe.language_code("zh-hans") == "zh-Hans"
    assert recipe.language_code("Hindi (romanized)") == "hi-rom"
    with pytest.raises(KeyError):
        recipe.language_code("Klingon")
    with pytest.raises(KeyError, match="allowed"):
        recipe.get_task_type("text-ranking")
