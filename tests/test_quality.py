"""CheckQuality on the DirectRunner: planted defects flagged or routed to rejected, duplicates removed."""

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import BeamAssertException, assert_that

from tests.support.quality_rows import CLEAN, make_row
from tests.test_quality_checks import PLANTED
from transforms import recipe
from transforms.quality.checks import CheckSettings, check_names, check_row
from transforms.quality.dedup import jaccard, shingles
from transforms.quality.langid import LanguageDetector
from transforms.quality.stage import CheckQuality, QualityConfig


def _inputs():
    """Clean rows, one row per planted defect, and planted duplicates. Returns (rows, expected failures by id).

    Planted rows mostly share their anchor and positive with a clean row, so many are duplicates too; which
    ones is computed here by brute force (every earlier-ranked row compared), independently of the LSH path.
    """
    detector = LanguageDetector()
    rows = [make_row(name) for name in sorted(CLEAN)]
    for i, case in enumerate(sorted(PLANTED)):
        sample, overrides, _ = PLANTED[case]
        rows.append(make_row(sample, example_id=f"planted-{i:02d}", **overrides))
    retrieval = make_row("retrieval-en")
    # An exact copy and a one-word edit of a clean row, under ids that sort after it: both are duplicates.
    rows.append(make_row("retrieval-en", example_id="zz-exact-copy"))
    edited = retrieval["positive_document"].replace("growth", "development")
    rows.append(make_row("retrieval-en", example_id="zz-one-word-edit", positive_document=edited))
    # A duplicate pair where the failing row has the smaller id: the passing row is kept.
    rows.append(make_row("triplet-es", example_id="aa-failing-copy", S3=make_row("triplet-es")["S2"]))

    expected, duplicate_of = {}, {}
    for row in rows:
        expected[row["example_id"]] = set(check_row(row, detector, CheckSettings())[1])
    for i, case in enumerate(sorted(PLANTED)):
        assert expected[f"planted-{i:02d}"] == PLANTED[case][2]  # every planted defect is flagged
    ranked = sorted(rows, key=lambda r: (bool(expected[r["example_id"]]), r["example_id"]))
    for i, row in enumerate(ranked):
        earlier = [
            e["example_id"]
            for e in ranked[:i]
            if e["category"] == row["category"] and jaccard(_shingles(e), _shingles(row)) >= 0.8
        ]
        if earlier:
            duplicate_of[row["example_id"]] = earlier[0]
    for row_id in duplicate_of:
        expected[row_id] = expected[row_id] | {"duplicate"}
    assert duplicate_of["zz-exact-copy"] == duplicate_of["zz-one-word-edit"] == "id-retrieval-en"
    assert duplicate_of["aa-failing-copy"] == "id-triplet-es"
    return rows, expected, duplicate_of


def _shingles(row):
    task_type = recipe.get_task_type(row["category"])
    return shingles(row[task_type.role("anchor")] + "\n" + row[task_type.role("positive")], 3)


def _check(expected_ids, expected_failures, duplicate_of):
    def matcher(rows):
        by_id = {row["example_id"]: row for row in rows}
        if set(by_id) != set(expected_ids) or len(by_id) != len(rows):
            raise BeamAssertException(f"ids {sorted(by_id)} != {sorted(expected_ids)}")
        for example_id, row in by_id.items():
            failures = set(row["quality_failures"])
            if failures != expected_failures[example_id]:
                raise BeamAssertException(
                    f"{example_id}: {sorted(failures)} != {sorted(expected_failures[example_id])}"
                )
            if row["quality_pass"] != (not failures):
                raise BeamAssertException(f"{example_id}: quality_pass disagrees with its failures")
            names = check_names(recipe.get_task_type(row["category"]))
            contamination = {"contamination"} if row.get("task") else set()  # brainstormed rows (contamination.py)
            if set(row["quality_checks"]) != set(names) | {"duplicate"} | contamination:
                raise BeamAssertException(f"{example_id}: checks {row['quality_checks']}")
            if row["duplicate_of"] != duplicate_of.get(example_id):
                raise BeamAssertException(f"{example_id}: duplicate_of {row['duplicate_of']}")

    return matcher


@pytest.mark.parametrize("policy", ["flag", "reject"])
def test_planted_defects_are_flagged_and_routed_by_policy(policy):
    rows, expected, duplicate_of = _inputs()
    duplicates = set(duplicate_of)
    failing = {i for i, f in expected.items() if f} - duplicates
    clean = set(expected) - failing - duplicates
    kept = clean | failing if policy == "flag" else clean
    with TestPipeline() as p:
        out = p | beam.Create(rows) | CheckQuality(QualityConfig(filter=policy))
        assert_that(out["rows"], _check(kept, expected, duplicate_of), label="Kept")
        assert_that(out["rejected"], _check(set(expected) - kept, expected, duplicate_of), label="Rejected")


def test_quality_config_rejects_an_unknown_policy():
    with pytest.raises(ValueError, match="quality filter"):
        QualityConfig(filter="drop")
