"""Batch prediction jobs already created for a batch (found by display name) and whether one can be adopted."""

from __future__ import annotations

import datetime
import hashlib
import logging
from collections.abc import Callable, Iterable

from apache_beam.io.filesystems import FileSystems

__all__ = [
    "NOT_ADOPTED",
    "adoptable_job",
    "display_name",
    "name_filter",
    "job_state",
    "created_at",
    "timestamp",
    "newest",
    "why_not_adopted",
    "lines_sha256",
    "file_sha256",
]

_LOGGER = logging.getLogger(__name__)

# A job found in one of these states cannot answer its batch any more: a new job is created instead.
NOT_ADOPTED = ("JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_CANCELLING", "JOB_STATE_EXPIRED")


def display_name(digest: str) -> str:
    """The display name every job of the batch ``digest`` is created with."""
    return f"embedgen-{digest[:16]}"


def name_filter(name: str) -> str:
    """Vertex AI's list filter for the jobs of one display name (the name holds only [a-z0-9-])."""
    return f'display_name="{name}"'


def job_state(job) -> str:
    return str(getattr(job.state, "value", job.state))


def timestamp(value) -> float | None:
    """A time the service gave (a datetime; naive means UTC) as epoch seconds, None when it gave none."""
    if not isinstance(value, datetime.datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value.timestamp()


def created_at(job) -> float | None:
    """The job's create_time as epoch seconds, None when the service gave none."""
    return timestamp(getattr(job, "create_time", None))


def newest(jobs: Iterable, name: str):
    """The most recently created job named ``name`` (the list's order is not relied on), None if there is none."""
    named = [j for j in jobs if j.display_name == name]  # a filter the service ignored would list every job
    if not named:
        return None
    return max(named, key=lambda j: (created_at(j) or 0.0, j.name or ""))


def _last_segment(model: str | None) -> str:
    return (model or "").rsplit("/", 1)[-1].split("@", 1)[0]


def why_not_adopted(job, model: str, source: str, dest: str, staged_unchanged: Callable[[], bool]) -> str | None:
    """None when ``job`` answers this very batch, else why not.

    A job named after the batch digest can also come from another run over the same ``--temp_location`` (the digest
    covers the requests' elements, attempts, seeds and prompts, not the model or the generation settings), so it
    is adopted only if it still can end well, runs the same model, reads this batch's staged input file, writes
    where this batch expects its results, and that staged file holds exactly the lines this run would write.

    Args:
        job: A google-genai BatchJob from the list call.
        model: The run's model (``gemini-2.5-flash`` or a resource path ending in it).
        source: The batch's input.jsonl.
        dest: The batch's output folder.
        staged_unchanged: Whether the staged file equals this run's lines (called last: it reads the file).
    """
    state = job_state(job)
    if state in NOT_ADOPTED:
        return f"it is {state.removeprefix('JOB_STATE_')}"
    if _last_segment(job.model) != _last_segment(model):
        return f"it runs {job.model}"
    sources = list(getattr(job.src, "gcs_uri", None) or [])
    if sources != [source]:
        return f"it reads {sources}"
    if (getattr(job.dest, "gcs_uri", None) or "").rstrip("/") != dest.rstrip("/"):
        return f"it writes to {getattr(job.dest, 'gcs_uri', None)}"
    if not staged_unchanged():
        return "its staged input differs from this run's requests (other generation settings)"
    return None


def lines_sha256(lines: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line)
    return digest.hexdigest()


def file_sha256(path: str) -> str | None:
    """The sha256 of a staged file, None if it is not there."""
    if not FileSystems.exists(path):
        return None
    digest = hashlib.sha256()
    with FileSystems.open(path) as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def adoptable_job(client, retrying, digest: str, model: str, source: str, dest: str, staged_unchanged):
    """The newest job already created for the batch ``digest`` if it can be adopted, else None.

    One list call (filtered by display name, every page), through ``retrying(what, call)``. Arguments after
    ``digest`` are those of `why_not_adopted`.
    """
    from google.genai import types

    name = display_name(digest)
    config = types.ListBatchJobsConfig(filter=name_filter(name))
    job = newest(retrying(f"batch job {digest[:12]}: list", lambda: list(client.batches.list(config=config))), name)
    if job is None:
        return None
    why = why_not_adopted(job, model, source, dest, staged_unchanged)
    if why is None:
        return job
    _LOGGER.info("batch job %s: %s is not adopted (%s); creating a new job", digest[:12], job.name, why)
    return None
