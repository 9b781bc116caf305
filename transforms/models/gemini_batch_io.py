"""Gemini batch prediction's files: request keys, the job journal (one record per job) and the JSONL lines."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from apache_beam.io.filesystems import FileSystems

from transforms.elements import Completion, PromptRequest, token_budget
from transforms.models.gemini import gemini_schema
from transforms.resume import JOURNAL, journal_key

__all__ = [
    "request_key",
    "batch_digest",
    "record_path",
    "new_record",
    "load_record",
    "save_record",
    "read_job_records",
    "format_jobs",
    "request_line",
    "line_key",
    "line_completion",
]


def request_key(request: PromptRequest) -> str:
    """The key of a request's JSONL line: a digest of its journal key (element, attempt, seed, prompt)."""
    return hashlib.sha256(journal_key(request).encode("utf-8")).hexdigest()[:32]


def batch_digest(keys: Sequence[str]) -> str:
    """What names a batch job in the journal: a digest of its requests' keys, in any order."""
    return hashlib.sha256("\n".join(sorted(keys)).encode("ascii")).hexdigest()[:32]


# ----- the job journal -----
def record_path(journal: str, digest: str) -> str:
    return FileSystems.join(journal, JOURNAL, f"batchjob-{digest}.jsonl")


def new_record(digest: str, job, requests: Sequence[PromptRequest], source: str, dest: str, submitted: float) -> dict:
    """The journal record of the batch ``digest``'s job, as written when it is submitted (or adopted)."""
    return {
        "digest": digest,
        "name": job.name,
        "attempt": max(r.attempt for r in requests),
        "requests": len(requests),
        "source": source,
        "dest": dest,
        "submitted": submitted,
        "state": str(getattr(job.state, "value", job.state)),
    }


def load_record(journal: str, digest: str) -> dict | None:
    path = record_path(journal, digest)
    if not FileSystems.exists(path):
        return None
    with FileSystems.open(path) as handle:
        lines = [line for line in handle.read().decode("utf-8").splitlines() if line.strip()]
    for line in reversed(lines):
        try:
            return json.loads(line)["batch_job"]
        except (ValueError, KeyError):
            continue  # a line cut short by an interruption
    return None


def save_record(journal: str, record: dict) -> None:
    # One line per file, rewritten whole: the reply journal's reader skips it (no "key"), --overwrite deletes it.
    with FileSystems.create(record_path(journal, record["digest"])) as handle:
        handle.write(json.dumps({"batch_job": record}).encode("utf-8") + b"\n")


def read_job_records(journal: str) -> list:
    """Every batch job recorded under ``journal``, oldest submission first."""
    pattern = FileSystems.join(journal, JOURNAL, "batchjob-*.jsonl")
    records = []
    for meta in FileSystems.match([pattern])[0].metadata_list:
        digest = meta.path.rsplit("batchjob-", 1)[1][: -len(".jsonl")]
        record = load_record(journal, digest)
        if record is not None:
            records.append(record)
    return sorted(records, key=lambda r: r.get("submitted", 0))


def format_jobs(records: Sequence[dict], outcomes: dict | None = None) -> str:
    """The summary's batch-job lines: count by state, this run's job outcomes (if given), then one line per job.

    Args:
        records: The journal's job records (`read_job_records`).
        outcomes: This run's ``batch_jobs/<outcome>`` counters by outcome: submitted, adopted, reused, succeeded, ...
    """
    by_state: dict = {}
    for r in records:
        by_state[r.get("state", "?")] = by_state.get(r.get("state", "?"), 0) + 1
    states = ", ".join(f"{s.removeprefix('JOB_STATE_').lower()} {n}" for s, n in sorted(by_state.items()))
    lines = [f"batch jobs: {len(records)} ({states or 'none'})"]
    if outcomes:
        lines.append("  this run: " + ", ".join(f"{k} {n}" for k, n in sorted(outcomes.items()) if n))
    lines.append(
        f"  {'job':<14}{'attempt':>8}{'state':>22}{'seconds':>9}{'requests':>9}{'answered':>9}{'failed':>7}{'missing':>8}"  # noqa: E501
    )
    for r in records:
        duration = (r["ended"] - r["submitted"]) if r.get("ended") else float("nan")
        lines.append(
            f"  {r['name'].rsplit('/', 1)[-1][:13]:<14}{r.get('attempt', 0):>8}{r.get('state', '?').removeprefix('JOB_STATE_'):>22}"  # noqa: E501
            f"{duration:>9.1f}{r['requests']:>9}{r.get('answered', 0):>9}{r.get('failed_lines', 0):>7}{r.get('missing', 0):>8}"  # noqa: E501
        )
    return "\n".join(lines)


# ----- request lines -----
def _camel(schema: Any) -> Any:
    """Vertex AI's schema keys in their JSON (camelCase) names, as a JSONL request line carries them."""
    if isinstance(schema, dict):
        return {
            "".join(w.title() if i else w for i, w in enumerate(k.split("_"))): _camel(v) for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [_camel(v) for v in schema]
    return schema


def request_line(request: PromptRequest, remote, thinking_budget: int | None) -> dict:
    key = request_key(request)
    config = {
        "temperature": remote.temperature,
        "topP": remote.top_p,
        "maxOutputTokens": token_budget(request, remote.max_tokens),
        "seed": request.sampling_seed,
        "candidateCount": 1,
        "responseMimeType": "application/json",
        "responseSchema": _camel(gemini_schema(json.loads(request.schema_json))),
    }
    if thinking_budget is not None:
        config["thinkingConfig"] = {"thinkingBudget": thinking_budget}
    body = {"contents": [{"role": "user", "parts": [{"text": request.prompt}]}], "generationConfig": config}
    # The key rides twice: as a top-level field passed through to the output line, and as a request label.
    return {"key": key, "request": {**body, "labels": {"embedgen_key": key}}}


def line_key(line: dict) -> str | None:
    return line.get("key") or ((line.get("request") or {}).get("labels") or {}).get("embedgen_key")


def line_completion(line: dict, model_name: str) -> Completion:
    status = line.get("status")
    response = line.get("response")
    if status or not isinstance(response, dict):
        return Completion(
            "", model_name, "error", error=f"batch line failed: {status or 'no response'}", retryable=True
        )
    candidates = response.get("candidates") or []
    if not candidates:
        reason = (response.get("promptFeedback") or {}).get("blockReason")
        return Completion("", model_name, "error", error=f"no candidate (prompt block reason: {reason})")
    parts = (candidates[0].get("content") or {}).get("parts") or []
    usage = response.get("usageMetadata") or {}
    return Completion(
        text="".join(p.get("text", "") for p in parts if not p.get("thought")),
        model=model_name,
        finish_reason="length" if candidates[0].get("finishReason") == "MAX_TOKENS" else "stop",
        prompt_tokens=int(usage.get("promptTokenCount") or 0),
        completion_tokens=int(usage.get("candidatesTokenCount") or 0),
    )
