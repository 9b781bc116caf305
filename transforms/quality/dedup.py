"""Near-duplicate detection that scales: MinHash band keys, grouped by key, candidates verified by exact Jaccard."""

from __future__ import annotations

import hashlib
import logging
import math
import re
from typing import NamedTuple

import apache_beam as beam
import numpy as np

from transforms import metrics

__all__ = [
    "shingles",
    "jaccard",
    "band_layout",
    "NearDuplicates",
    "SplitNearDuplicates",
    "DedupItem",
]

_LOGGER = logging.getLogger(__name__)

# Scripts written without spaces between words count one token per character; everything else by word.
_TOKEN = re.compile(
    r"[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]"
    r"|[^\W_]+",
    re.UNICODE,
)


class DedupItem(NamedTuple):
    """One item to deduplicate.

    Attributes:
        rank: Unique sort key; of two near-duplicates the one with the smaller rank is kept.
        scope: Items are compared only within the same scope (e.g. the category).
        text: The text compared.
        payload: Carried through untouched (a row, a (category, task) pair, ...).
    """

    rank: str
    scope: str
    text: str
    payload: object


def shingles(text: str, ngram: int) -> np.ndarray:
    """Sorted unique 32-bit hashes of the text's case-folded word n-grams (CJK/Thai/...: character n-grams).

    Texts shorter than ``ngram`` tokens yield one shingle of all their tokens, so short texts still compare.
    """
    tokens = _TOKEN.findall(text.casefold())
    if not tokens:
        return np.zeros(0, dtype=np.uint32)
    grams = [" ".join(tokens[i : i + ngram]) for i in range(max(1, len(tokens) - ngram + 1))]
    hashes = {int.from_bytes(hashlib.blake2b(g.encode("utf-8"), digest_size=4).digest(), "little") for g in grams}
    return np.array(sorted(hashes), dtype=np.uint32)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted unique shingle arrays."""
    if len(a) == 0 and len(b) == 0:
        return 1.0
    common = len(np.intersect1d(a, b, assume_unique=True))
    return common / (len(a) + len(b) - common)


def band_layout(threshold: float, num_perm: int, recall: float = 0.99) -> tuple[int, int]:
    """(bands, rows per band): the longest bands, and the fewest of them, that make a pair at exactly
    ``threshold`` a candidate with probability >= ``recall`` within ``num_perm`` permutations.

    Longer bands make fewer false candidates; fewer bands make fewer records to group (each item is grouped
    once per band). Candidates are verified exactly, so a false candidate costs time, never accuracy.
    """
    for rows in range(num_perm, 0, -1):
        hit = threshold**rows  # probability that one band of a pair at the threshold agrees
        if hit >= 1.0:
            return 1, rows
        bands = 1 if hit <= 0.0 else math.ceil(math.log1p(-recall) / math.log1p(-hit) - 1e-9)
        if 0 < bands and bands * rows <= num_perm and 1.0 - (1.0 - hit) ** bands >= recall:
            return bands, rows
    return num_perm, 1


_SHINGLES = "shingles"


class _Fingerprint(beam.DoFn):
    """DedupItem -> ((scope, band hash), rank) once per band, and (rank, shingles) once on the tagged output.

    Only the rank travels with each band key: most buckets hold one item, and carrying the shingles into every
    band would hold ``bands`` copies of them while the buckets are grouped.
    """

    def __init__(self, ngram: int, num_perm: int, bands: int, rows: int, seed: int):
        self._ngram = ngram
        self._num_perm = num_perm
        self._bands = bands
        self._rows = rows
        self._seed = seed

    def setup(self):
        from datasketch import MinHash

        self._template = MinHash(num_perm=self._num_perm, seed=self._seed)
        self._empty = metrics.counter(metrics.DEDUP_EMPTY_TEXTS)

    def process(self, item: DedupItem):
        from datasketch import MinHash

        grams = shingles(item.text, self._ngram)
        if len(grams) == 0:
            self._empty.inc()
            return
        minhash = MinHash(
            num_perm=self._num_perm,
            hashfunc=int,
            permutations=self._template.permutations,
            seed=self._seed,
            scheme=self._template.scheme,
        )
        minhash.update_batch(grams.tolist())
        signature = minhash.hashvalues.astype(np.uint64)
        yield beam.pvalue.TaggedOutput(_SHINGLES, (item.rank, grams))
        for band in range(self._bands):
            chunk = band.to_bytes(2, "little") + signature[band * self._rows : (band + 1) * self._rows].tobytes()
            yield (item.scope, int.from_bytes(hashlib.blake2b(chunk, digest_size=8).digest(), "little")), item.rank


def _shared_buckets(keyed):
    """A band bucket with two or more members -> (rank, bucket) per member; lone members need no comparison."""
    bucket, ranks = keyed
    ranks = list(ranks)
    if len(ranks) > 1:
        for rank in ranks:
            yield rank, bucket


def _shingles_per_bucket(joined):
    """(rank, {shingles, buckets}) -> (bucket, (rank, shingles)) for each shared bucket of the item."""
    rank, groups = joined
    buckets = list(groups["buckets"])
    if buckets:
        grams = next(iter(groups["shingles"]))
        for bucket in buckets:
            yield bucket, (rank, grams)


def _compare_in_band(keyed, threshold: float, max_comparisons: int):
    """Every member with an earlier member at Jaccard >= threshold -> (rank, that earlier rank)."""
    _, members = keyed
    members = sorted(members, key=lambda m: m[0])
    for i in range(1, len(members)):
        rank, grams = members[i]
        for earlier_rank, earlier_grams in members[max(0, i - max_comparisons) : i]:
            if earlier_rank != rank and jaccard(grams, earlier_grams) >= threshold:
                yield rank, earlier_rank
                break


class NearDuplicates(beam.PTransform):
    """DedupItems -> (rank, smallest earlier rank) for each item that has a near-duplicate ranked before it.

    MinHash signatures are cut into bands; items sharing a band hash meet in one group (never the whole data
    set on one worker), where candidates are verified by exact Jaccard of their shingle sets. An item is a
    duplicate when some item with a smaller rank is at least ``threshold`` similar to it; the smallest-ranked
    item of every cluster is never a duplicate, so each cluster keeps at least one member.

    Ranks must be unique across scopes. Buckets are first grouped with ranks only; the shingles are joined to
    the members of shared buckets afterwards, so the memory and shuffle volume of a run of distinct texts is
    one small record per band and item plus one copy of each item's shingles.
    """

    def __init__(self, threshold: float, ngram: int, num_perm: int = 128, seed: int = 1, max_comparisons: int = 64):
        super().__init__()
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self._threshold = threshold
        self._ngram = ngram
        self._num_perm = num_perm
        self._seed = seed
        self._max_comparisons = max_comparisons
        self._bands, self._rows = band_layout(threshold, num_perm)

    def expand(self, items):
        fingerprints = items | "Fingerprint" >> beam.ParDo(
            _Fingerprint(self._ngram, self._num_perm, self._bands, self._rows, self._seed)
        ).with_outputs(_SHINGLES, main="bands")
        memberships = (
            fingerprints.bands | "GroupByBand" >> beam.GroupByKey() | "SharedBuckets" >> beam.FlatMap(_shared_buckets)
        )
        return (
            {"shingles": fingerprints[_SHINGLES], "buckets": memberships}
            | "JoinShingles" >> beam.CoGroupByKey()
            | "ShinglesPerBucket" >> beam.FlatMap(_shingles_per_bucket)
            | "GroupByBucket" >> beam.GroupByKey()
            | "CompareInBand" >> beam.FlatMap(_compare_in_band, self._threshold, self._max_comparisons)
            | "EarliestDuplicateOf" >> beam.CombinePerKey(min)
        )


def _split(joined, counter_prefix: str):
    rank, groups = joined
    items = list(groups["item"])
    earlier = list(groups["earlier"])
    for scope, payload in items:
        if earlier:
            metrics.inc(counter_prefix, scope)
            yield beam.pvalue.TaggedOutput("duplicates", (payload, earlier[0]))
        else:
            yield payload


class SplitNearDuplicates(beam.PTransform):
    """DedupItems -> {"kept": payloads, "duplicates": (payload, rank of the earlier near-duplicate)}.

    Args:
        threshold: Jaccard similarity of the shingle sets at or above which two texts are duplicates.
        ngram: Shingle length in tokens.
        counter: Metric name prefix; ``<counter>/<scope>`` counts duplicates per scope.
    """

    def __init__(self, threshold: float, ngram: int, counter: str = metrics.DEDUP_DUPLICATES, **kwargs):
        super().__init__()
        self._near = NearDuplicates(threshold, ngram, **kwargs)
        self._counter = counter

    def expand(self, items):
        duplicate_of = items | "FindNearDuplicates" >> self._near
        # The text is not needed past the comparison: only the scope (for the counter) and payload are joined.
        by_rank = items | "KeyByRank" >> beam.Map(lambda item: (item.rank, (item.scope, item.payload)))
        split = (
            {"item": by_rank, "earlier": duplicate_of}
            | "JoinDuplicateMarks" >> beam.CoGroupByKey()
            | "Split" >> beam.FlatMap(_split, self._counter).with_outputs("duplicates", main="kept")
        )
        return {"kept": split.kept, "duplicates": split.duplicates}
