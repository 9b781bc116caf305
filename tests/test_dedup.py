"""NearDuplicates / SplitNearDuplicates on the DirectRunner: planted near-duplicates found, distinct texts kept."""

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.quality.dedup import DedupItem, NearDuplicates, SplitNearDuplicates, band_layout, jaccard, shingles

TASKS = [
    "Given a scientific claim, retrieve documents that support or refute it",
    "Given a scientific claim, retrieve documents that support or refute the claim.",
    "given a scientific claim,  retrieve documents that support or refute it",
    "Given a medical question, retrieve relevant research papers",
    "Given a legal question, retrieve relevant court rulings",
    "Given a text-retrieval need number 0, find what helps.",
    "Given a text-retrieval need number 1, find what helps.",
]


def test_shingles_and_jaccard():
    a, b = shingles(TASKS[0], 2), shingles(TASKS[2], 2)
    assert jaccard(a, b) == 1.0  # case and spacing do not matter
    assert jaccard(shingles(TASKS[0], 2), shingles(TASKS[1], 2)) >= 0.7
    assert jaccard(shingles(TASKS[5], 2), shingles(TASKS[6], 2)) < 0.7
    assert len(shingles("光合作用是绿色植物", 2)) == 8  # one token per CJK character
    assert len(shingles("", 2)) == 0 and len(shingles("word", 3)) == 1


@given(st.lists(st.text(min_size=0, max_size=30), min_size=2, max_size=2))
@settings(max_examples=50, deadline=None)
def test_jaccard_is_symmetric_and_bounded(texts):
    a, b = (shingles(t, 2) for t in texts)
    assert jaccard(a, b) == jaccard(b, a)
    assert 0.0 <= jaccard(a, b) <= 1.0
    assert jaccard(a, a) == 1.0


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.8, 0.9])
def test_band_layout_uses_all_permutations_at_most(threshold):
    bands, rows = band_layout(threshold, 128)
    assert bands * rows <= 128 and bands >= 1


def test_near_duplicates_against_a_brute_force_count():
    items = [DedupItem(f"r{i:02d}", "scope", text, None) for i, text in enumerate(TASKS)]
    expected = []
    for i, item in enumerate(items):
        similar = [e.rank for e in items[:i] if jaccard(shingles(e.text, 2), shingles(item.text, 2)) >= 0.7]
        if similar:
            expected.append((item.rank, min(similar)))
    assert [rank for rank, _ in expected] == ["r01", "r02"]
    with TestPipeline() as p:
        found = p | beam.Create(items) | NearDuplicates(0.7, ngram=2)
        assert_that(found, equal_to(expected))


def test_scopes_are_never_compared_and_clusters_keep_their_first_member():
    text = "the same words in the same order every time"
    items = [DedupItem(f"{scope}{i}", scope, text, (scope, i)) for scope in "ab" for i in range(3)]
    items.append(DedupItem("c0", "c", "something else entirely different here", ("c", 0)))
    with TestPipeline() as p:
        split = p | beam.Create(items) | SplitNearDuplicates(0.8, ngram=3)
        assert_that(split["kept"], equal_to([("a", 0), ("b", 0), ("c", 0)]), label="Kept")
        assert_that(
            split["duplicates"],
            equal_to([(("a", 1), "a0"), (("a", 2), "a0"), (("b", 1), "b0"), (("b", 2), "b0")]),
            label="Duplicates",
        )


def test_many_distinct_texts_are_all_kept():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(500)]
    items = [DedupItem(f"{i:03d}", "s", " ".join(rng.choice(words, 30)), i) for i in range(60)]
    with TestPipeline() as p:
        split = p | beam.Create(items) | SplitNearDuplicates(0.8, ngram=3)
        assert_that(split["duplicates"], equal_to([]), label="NoDuplicates")
