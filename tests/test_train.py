"""`embedgen train`: retrieval metrics, corpus building, flag validation, and a tiny generate -> export -> train run."""

import json
import math
import os

import pytest

from pipelines import export, generate, train
from tests.support.fakes import FakeHandler
from transforms.training.trainer import (
    DEFAULT_BASE_MODEL,
    build_corpus,
    read_split,
    resolve_base_model,
    retrieval_metrics,
)


def test_metrics_of_known_rankings():
    scores = [
        [0.9, 0.1, 0.5],  # relevant 0 ranked 1st
        [0.9, 0.1, 0.5],  # relevant 2 ranked 2nd
        [0.9, 0.1, 0.5],  # relevant 1 ranked 3rd
    ]
    got = retrieval_metrics(scores, [{0}, {2}, {1}], k=10)
    assert [m["recall@1"] for m in got] == [1.0, 0.0, 0.0]
    assert [m["mrr@10"] for m in got] == [1.0, 0.5, pytest.approx(1 / 3)]
    assert [m["ndcg@10"] for m in got] == [1.0, pytest.approx(1 / math.log2(3)), pytest.approx(0.5)]


def test_metrics_cut_off_at_k_and_ties_keep_document_order():
    got = retrieval_metrics([[0.0] * 5], [{4}], k=3)[0]
    assert got == {"recall@1": 0.0, "mrr@3": 0.0, "ndcg@3": 0.0}
    assert retrieval_metrics([[0.0] * 5], [{0}], k=3)[0]["recall@1"] == 1.0
    with pytest.raises(ValueError):
        retrieval_metrics([[0.0]], [set()])


def test_corpus_has_each_text_once_and_relevance_follows_the_positive_text():
    rows = [
        {"anchor": "q1", "positive": "sports", "negative": "politics", "category": "text-classification"},
        {"anchor": "q2", "positive": "politics", "negative": "sports", "category": "text-classification"},
        {"anchor": "q3", "positive": "doc", "negative": None, "category": "text-matching-short"},
    ]
    queries, documents, relevant = build_corpus(rows)
    assert queries == ["q1", "q2", "q3"]
    assert documents == ["sports", "politics", "doc"]
    assert relevant == [{0}, {1}, {2}]


def test_packaged_base_model_is_a_local_directory():
    path = resolve_base_model(DEFAULT_BASE_MODEL)
    assert os.path.isfile(os.path.join(path, "modules.json"))
    with pytest.raises(ValueError, match="model hub"):
        resolve_base_model("sentence-transformers/all-mpnet-base-v2")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A small fake-model generation, exported as jsonl with a validation split."""
    root = tmp_path_factory.mktemp("train")
    gen, out = str(root / "gen"), str(root / "export")
    argv = [
        "--output",
        gen,
        "--tasks-per-category",
        "3",
        "--examples-per-task",
        "2",
        "--examples-per-symmetric-type",
        "4",
    ]
    assert generate.run(argv, handler=FakeHandler()) == 0
    assert export.run(["--input", gen, "--out", out, "--validation-fraction", "0.3", "--num-shards", "1"]) == 0
    return out


@pytest.mark.parametrize(
    "extra,must_say",
    [
        (["--base-model", "no/such-model"], "--base-model"),
        (["--batch-size", "1"], "--batch-size"),
        (["--epochs", "0"], "--epochs"),
        (["--warmup-fraction", "1.5"], "--warmup-fraction"),
        (["--max-seq-length", "2"], "--max-seq-length"),
    ],
)
def test_bad_flags_fail_before_loading_anything(tmp_path, capsys, exported, extra, must_say):
    out = tmp_path / "model"
    assert train.run(["--data", exported, "--out", str(out), *extra]) == 2
    assert must_say in capsys.readouterr().err
    assert not out.exists()


def test_data_without_a_validation_split_is_refused(tmp_path, capsys):
    (tmp_path / "data" / "train").mkdir(parents=True)
    (tmp_path / "data" / "train" / "part-00000-of-00001.jsonl").write_text("{}\n")
    assert train.run(["--data", str(tmp_path / "data"), "--out", str(tmp_path / "m")]) == 2
    assert "validation" in capsys.readouterr().err
    assert train.run(["--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "m")]) == 2


def test_tiny_training_run_writes_a_model_that_loads_and_reports_before_and_after(tmp_path, capsys, exported):
    out = str(tmp_path / "model")
    argv = ["--data", exported, "--out", out, "--epochs", "1", "--batch-size", "4", "--max-seq-length", "32"]
    assert train.run([*argv, "--max-train-rows", "12"]) == 0
    printed = capsys.readouterr().out
    assert "before" in printed and "after" in printed and "nDCG@10" in printed
    assert printed.strip().splitlines()[-1].startswith("after/before:")

    with open(os.path.join(out, train.RESULTS_FILE)) as handle:
        results = json.load(handle)
    validation = read_split(exported, "validation")
    assert results["train_rows"] == 12 and results["validation_rows"] == len(validation)
    assert results["training"]["steps"] >= 1
    for when in ("before", "after"):
        overall = results[when]["overall"]
        assert set(overall) == {"recall@1", "mrr@10", "ndcg@10"}
        assert all(0.0 <= v <= 1.0 for v in overall.values())
        assert results[when]["queries"] == len(validation)

    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(out, device="cpu")
    embeddings = model.encode(["Instruct: find it\nQuery: where", "a document"], normalize_embeddings=True)
    assert embeddings.shape == (2, 384)
    assert train.run(argv) == 2, "a second run into the same --out needs --overwrite"
