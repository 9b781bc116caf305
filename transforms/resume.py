"""Resume support: a journal of model replies (never paid for twice) and the ids an earlier run already finished."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid

import apache_beam as beam
from apache_beam.io.avroio import ReadAllFromAvro
from apache_beam.io.filesystems import FileSystems

from transforms import metrics
from transforms.elements import Completion, PromptRequest

__all__ = [
    "JOURNAL",
    "journal_key",
    "has_journal",
    "delete_journal",
    "WriteJournal",
    "ReadJournal",
    "ReadFinishedIds",
    "DropFinished",
]

_LOGGER = logging.getLogger(__name__)

JOURNAL = "_journal"


def journal_key(request: PromptRequest) -> str:
    """What makes a reply reusable: the element, the attempt, its seed and the exact prompt text."""
    prompt_sha = hashlib.sha256(request.prompt.encode("utf-8", errors="replace")).hexdigest()[:16]
    return f"{request.element.element_id}:{request.attempt}:{request.sampling_seed}:{prompt_sha}"


def journal_glob(output: str) -> str:
    return FileSystems.join(output, JOURNAL, "*.jsonl")


def _journal_files(output: str) -> list:
    return [m.path for m in FileSystems.match([journal_glob(output)])[0].metadata_list]


def has_journal(output: str) -> bool:
    """Whether an earlier run under ``output`` logged any reply."""
    return bool(_journal_files(output))


def delete_journal(output: str) -> int:
    paths = _journal_files(output)
    if paths:
        FileSystems.delete(paths)
    return len(paths)


class _WriteJournalDoFn(beam.DoFn):
    """Appends each successful reply to a file of this bundle, flushed per line, then passes it on."""

    def __init__(self, output: str):
        self._output = output

    def setup(self):
        self._written = metrics.counter(metrics.JOURNAL_WRITTEN)

    def start_bundle(self):
        self._file = None

    def process(self, result):
        request, completion = result.example, result.inference
        if completion.error is None:  # failed calls are asked again on resume, never replayed
            if self._file is None:
                path = FileSystems.join(self._output, JOURNAL, f"{uuid.uuid4().hex}.jsonl")
                self._file = FileSystems.create(path)
            line = json.dumps({"key": journal_key(request), "completion": completion._asdict()}, ensure_ascii=False)
            self._file.write(line.encode("utf-8", errors="replace") + b"\n")
            self._file.flush()
            self._written.inc()
        yield result

    def finish_bundle(self):
        if self._file is not None:
            self._file.close()
            self._file = None

    def teardown(self):
        if getattr(self, "_file", None) is not None:
            self._file.close()


class WriteJournal(beam.PTransform):
    """PredictionResults -> the same PredictionResults, each successful reply logged under <output>/_journal/."""

    def __init__(self, output: str):
        super().__init__()
        self._output = output

    def expand(self, results):
        return results | "Append" >> beam.ParDo(_WriteJournalDoFn(self._output))


def _parse_line(line: str):
    try:
        entry = json.loads(line)
        return [(entry["key"], Completion(**entry["completion"]))]
    except (ValueError, KeyError, TypeError):
        return []  # a line cut short by the interruption: that reply is simply asked for again


class ReadJournal(beam.PTransform):
    """PBegin -> (journal key, Completion) of every reply an earlier run under ``output`` logged."""

    def __init__(self, output: str):
        super().__init__()
        self._output = output

    def expand(self, pbegin):
        return (
            pbegin
            | "ReadLines" >> beam.io.ReadFromText(journal_glob(self._output))
            | "ParseEntries" >> beam.FlatMap(_parse_line)
        )


def _finished_id(row: dict):
    return row.get("example_id") or row["element_id"], True


class ReadFinishedIds(beam.PTransform):
    """PBegin -> (id, True) for every example row and dead letter in the given Avro files of an earlier run."""

    def __init__(self, paths):
        super().__init__()
        self._paths = list(paths)

    def expand(self, pbegin):
        return (
            pbegin
            | "ListFiles" >> beam.Create(self._paths)
            | "ReadRows" >> ReadAllFromAvro()
            | "Ids" >> beam.Map(_finished_id)
        )


def _unfinished(keyed):
    _, group = keyed
    if group["finished"]:
        for element in group["element"]:
            metrics.inc(metrics.SKIPPED, element.category)
        return []
    return list(group["element"])


class DropFinished(beam.PTransform):
    """Elements -> the elements whose id is not among ``finished`` (a PCollection of (id, True))."""

    def __init__(self, finished):
        super().__init__()
        self._finished = finished

    def expand(self, elements):
        return (
            {"element": elements | "KeyById" >> beam.Map(lambda e: (e.element_id, e)), "finished": self._finished}
            | "MatchFinished" >> beam.CoGroupByKey()
            | "KeepUnfinished" >> beam.FlatMap(_unfinished)
        )
