"""The light checks as pure functions: clean rows pass everything, every planted defect is flagged by name."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.quality_rows import CLEAN, make_row
from transforms import recipe
from transforms.quality.checks import CheckSettings, check_names, check_row, count_words, length_bounds
from transforms.quality.langid import all_codes_covered, detector_labels, expected_scripts

SETTINGS = CheckSettings()
ENGLISH_DOC = make_row("retrieval-en")["positive_document"]
SWAHILI = make_row("matching-short-sw")["input"]


def _failures(row, detector):
    checks, failures = check_row(row, detector, SETTINGS)
    assert set(failures) <= set(checks)
    assert checks == [c for c in check_names(recipe.get_task_type(row["category"])) if c in checks]
    return set(failures)


@pytest.mark.parametrize("name", sorted(CLEAN))
def test_clean_rows_pass_every_check(name, detector):
    row = make_row(name)
    checks, failures = check_row(row, detector, SETTINGS)
    assert failures == []
    assert checks == list(check_names(recipe.get_task_type(row["category"])))


# (sample, overrides, exactly the failures expected)
PLANTED = {
    "asked for Swahili, wrote English": (
        "retrieval-en",
        {"language": "sw"},
        {"language:user_query", "language:positive_document", "language:hard_negative_document"},
    ),
    "one field in the wrong language": (
        "matching-short-sw",
        {"input": "How can I quickly learn to cook tasty food at home without a teacher?"},
        {"language:input"},
    ),
    "wrong script for Hindi": (
        "classification-en",
        {"language": "hi", "label": "खेल", "misleading_label": "मनोरंजन"},
        {"language:input_text"},
    ),
    "bitext target left untranslated": (
        "bitext-en-de",
        {"S2": make_row("bitext-en-de")["S1"].replace("Monday", "Tuesday")},
        {"language:S2"},
    ),
    "bitext source in the target language": ("bitext-en-de", {"source_language": "sw"}, {"language:S1"}),
    "documents far shorter than num_words": (
        "retrieval-en",
        {"num_words": "300"},
        {"length:positive_document", "length:hard_negative_document"},
    ),
    "query shorter than query_length": (
        "retrieval-en",
        {"query_length": "at least 10 words", "user_query": "plants sunlight chemical energy"},
        {"length:user_query"},
    ),
    "query longer than query_length": ("retrieval-de", {"query_length": "less than 5 words"}, {"length:user_query"}),
    "classification text too short": ("classification-en", {"num_words": "at least 100"}, {"length:input_text"}),
    "query copied into the positive": (
        "retrieval-en",
        {"positive_document": ENGLISH_DOC + " How do green plants turn sunlight into stored chemical energy?"},
        {"copied:user_query->positive_document"},
    ),
    "query copied into the negative": (
        "retrieval-de",
        {"hard_negative_document": "Warum wurde die Berliner Mauer im Jahr 1961 gebaut? " + ENGLISH_DOC},
        {"copied:user_query->hard_negative_document", "language:hard_negative_document"},
    ),
    "label inside its text": (
        "classification-en",
        {"input_text": make_row("classification-en")["input_text"] + " A great day for sports."},
        {"copied:label->input_text"},
    ),
    "negative equal to positive": (
        "retrieval-en",
        {"hard_negative_document": make_row("retrieval-en")["positive_document"]},
        {"same:positive_document=hard_negative_document"},
    ),
    "label equal to misleading label": (
        "classification-en",
        {"misleading_label": "sports."},
        {"same:label=misleading_label"},
    ),
    "S2 equal to S3": ("triplet-es", {"S3": make_row("triplet-es")["S2"]}, {"same:S2=S3"}),
    "S1 equal to S2": ("triplet-es", {"S2": make_row("triplet-es")["S1"].upper()}, {"same:S1=S2"}),
    "matching positive is the input": (
        "matching-long-fr",
        {"positive_document": make_row("matching-long-fr")["input"]},
        {"same:input=positive_document", "copied:input->positive_document"},
    ),
    "matching input copied into its positive": (
        "matching-short-sw",
        {"positive_document": SWAHILI + " Tafadhali nisaidie leo."},
        {"copied:input->positive_document"},
    ),
    "long matching text of one line": ("matching-long-fr", {"input": "Très bon aspirateur."}, {"length:input"}),
    "STS placeholders instead of sentences": (
        "triplet-es",
        {"S1": "S1", "S2": "S2", "S3": "S3"},
        {"length:S1", "length:S2", "length:S3", "echo:S1", "echo:S2", "echo:S3"},
    ),
    "field names echoed": (
        "triplet-es",
        {"S1": "S1: " + make_row("triplet-es")["S1"], "S3": "S3"},
        {"echo:S1", "echo:S3", "length:S3"},
    ),
    "bitext passage of one sentence": (
        "bitext-en-de",
        {"unit": "passage"},
        {"length:S1", "length:S2", "length:S3"},
    ),
}


@pytest.mark.parametrize("case", sorted(PLANTED))
def test_every_planted_defect_is_flagged_and_nothing_else(case, detector):
    sample, overrides, expected = PLANTED[case]
    assert _failures(make_row(sample, **overrides), detector) == expected


def test_short_query_inside_a_document_is_not_copying(detector):
    row = make_row("retrieval-en", query_length="less than 5 words", user_query="chlorophyll")
    assert _failures(row, detector) == set()


def test_language_checks_can_be_skipped():
    checks, failures = check_row(make_row("retrieval-en", language="sw"), None, SETTINGS)
    assert failures == [] and not any(c.startswith("language:") for c in checks)


def test_no_word_count_for_languages_without_spaces(detector):
    row = make_row(
        "retrieval-en",
        language="zh-Hans",
        num_words="300",
        user_query="绿色植物如何把阳光变成化学能",
        positive_document="光合作用是绿色植物利用阳光把水和二氧化碳转化为糖的过程。叶绿素吸收光能，释放氧气。",
        hard_negative_document="太阳能电池板利用硅材料把阳光转化为电能，广泛用于家庭屋顶。工程师会调整角度。",
    )
    checks, failures = check_row(row, detector, SETTINGS)
    assert failures == []
    assert not any(c.startswith("length:") for c in checks)
    assert count_words(row["positive_document"], "zh-Hans") is None


@pytest.mark.parametrize(
    ("value", "bounds"),
    [
        ("less than 5 words", (0, 4)),
        ("5 to 15 words", (5, 15)),
        ("at least 10 words", (5, float("inf"))),
        ("less than 10", (0, 9)),
        ("at least 200", (100, float("inf"))),
        ("at least 300 words", (150, float("inf"))),
        ("300", (150, 450)),
        ("about 300 words", (150, 450)),
        ("sentence", (4, 60)),
        ("phrase", (2, 15)),
        ("very short", (1, 40)),
    ],
)
def test_length_bounds(value, bounds):
    assert length_bounds(value, 0.5) == bounds


def test_documents_that_obey_at_least_are_not_flagged(detector):
    """The prompt asks for "at least {num_words} words": a 50-word ask answered with ~400 words passes."""
    long_doc = " ".join([make_row("retrieval-en")["positive_document"]] * 7)
    row = make_row("retrieval-en", num_words="50", positive_document=long_doc)
    assert "length:positive_document" not in _failures(row, detector)
    assert not {f for f in _failures(make_row("retrieval-en", num_words="100"), detector) if f.startswith("length")}


def test_less_than_passes_anything_under_and_nothing_at_the_bound():
    row = make_row("classification-en", num_words="less than 10", input_text="Final won on penalties.")
    assert "length:input_text" not in check_row(row, None, SETTINGS)[1]
    row = make_row("classification-en", num_words="less than 10", input_text=" ".join(["goal"] * 10))
    assert "length:input_text" in check_row(row, None, SETTINGS)[1]


def test_length_rules_come_from_the_declarations():
    asked = {(t.name, f.key): f.length for t in recipe.TASK_TYPES for f in t.outputs if f.length is not None}
    assert asked[("text-retrieval", "positive_document")] == "at least {num_words} words"
    assert asked[("text-matching-long", "input")] == "at least 300 words"
    assert asked[("text-matching-short", "input")] == "very short"
    for t in recipe.TASK_TYPES:
        names = check_names(t)
        assert [n for n in names if n.startswith("length:")] == [f"length:{f.key}" for f in t.outputs if f.length]


def test_every_length_attribute_value_is_understood():
    for task_type in recipe.TASK_TYPES:
        for name in ("num_words", "query_length", "unit"):
            if name in task_type.attribute_names:
                for value in task_type.attribute(name).values:
                    low, high = length_bounds(value, 0.5)
                    assert 0 <= low <= high


@given(st.lists(st.sampled_from(["word", "Wort,", "—", "42", "  ", "\n", "ok."]), max_size=40))
def test_count_words_counts_tokens_with_letters_or_digits(tokens):
    text = " ".join(tokens)
    assert count_words(text, "en") == sum(1 for t in text.split() if t not in ("—",))


def test_every_xlmr_language_has_a_check():
    covered = all_codes_covered()
    assert set(covered) == set(recipe.LANGUAGES)
    assert {code for code, how in covered.items() if how == "script"} == {
        "bn-rom",
        "hi-rom",
        "ta-rom",
        "te-rom",
        "ur-rom",
    }
    for code in recipe.LANGUAGES:
        assert expected_scripts(code)
        assert detector_labels(code) or code.endswith("-rom")


@pytest.mark.parametrize(
    ("text", "code", "ok"),
    [
        (SWAHILI, "sw", True),
        (SWAHILI, "en", False),
        ("प्रकाश संश्लेषण वह प्रक्रिया है जिसके द्वारा हरे पौधे सूर्य के प्रकाश से शर्करा बनाते हैं।", "hi", True),
        ("प्रकाश संश्लेषण वह प्रक्रिया है जिसके द्वारा हरे पौधे सूर्य के प्रकाश से शर्करा बनाते हैं।", "hi-rom", False),
        (
            "Prakash sanshleshan woh prakriya hai jisme hare paudhe suraj ki roshni se shakkar banate hain.",
            "hi-rom",
            True,
        ),
        (ENGLISH_DOC, "hi-rom", False),
        ("פאָטאָסינטעז איז דער פּראָצעס דורך וועלכן גרינע פֿלאַנצן נוצן די זונשייַן צו מאַכן צוקער.", "yi", True),
        ("光合作用是绿色植物利用阳光把水和二氧化碳转化为糖的过程。", "zh-Hant", True),
        ("光合成とは、緑色植物が太陽の光を使って水と二酸化炭素から糖を作る過程です。", "ja", True),
        (
            "Fotosintesis adalah proses ketika tumbuhan hijau menggunakan cahaya matahari untuk membuat gula.",
            "ms",
            True,
        ),
        ("12345 67", "en", False),
    ],
)
def test_language_detector(text, code, ok, detector):
    assert detector.check(text, code) is ok
