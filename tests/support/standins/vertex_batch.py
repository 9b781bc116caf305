"""BatchStandIn: a local HTTP stand-in of Vertex AI's batchPredictionJobs REST API (create, get, list), result files.

Speaks what google-genai's ``client.batches`` sends with ``vertexai=True`` and ``HttpOptions.base_url`` pointed here:

- ``POST /v1beta1/projects/<p>/locations/<l>/batchPredictionJobs``: a job reading ``inputConfig.gcsSource.uris``
  (local paths here: the "bucket" is the file system) and writing under ``outputConfig.gcsDestination``;
- ``GET .../batchPredictionJobs/<id>``: the job; it is PENDING, then RUNNING, and ends after ``polls_to_finish``
  gets (never while :attr:`hold` is set), writing ``<dest>/prediction-model-<ts>/predictions.jsonl``: one line per
  input line, ``{"key", "request", "response", "status"}``, as Vertex AI does;
- ``GET .../batchPredictionJobs?filter=&pageSize=&pageToken=``: the jobs, oldest first, ``page_size`` a page unless
  ``pageSize`` says fewer, ``nextPageToken`` while more follow; the filter is empty or ``display_name="..."``
  (``displayName="..."``), anything else is a 400 as from Vertex AI for a filter it cannot parse. Each list call
  is recorded in :attr:`list_calls` (its query);
- ``POST /token``: the OAuth token endpoint for the service-account key of :meth:`write_adc_file`.

Faults: ``fail_jobs`` (ordinals of created jobs, from 1, that end FAILED with no results) and ``line_fault`` (a
function of the prompt giving ``"error"`` for a failed line, ``"missing"`` for no line, ``"invalid"`` for a reply
that is not JSON, or None). Run alone: ``python -m tests.support.standins.vertex_batch --adc-dir DIR`` prints its URL.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.server
import json
import os
import re
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable

from tests.support.standins.local import LocalServer
from tests.support.standins.server import StandIn, reply_for_schema

__all__ = ["BatchStandIn", "Job"]

ENDED = ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED")
_NAME_FILTER = re.compile(r'^\s*(?:display_name|displayName)\s*=\s*"([^"\\]*)"\s*$')


@dataclasses.dataclass
class Job:
    """One batch prediction job the stand-in holds."""

    number: int
    name: str
    model: str
    sources: list
    dest: str
    display_name: str
    state: str = "JOB_STATE_PENDING"
    created: float = 0.0
    ended: float = 0.0  # time.time() when it ended (0 while it runs)
    gets: int = 0
    lines: int = 0
    error: dict | None = None

    def resource(self) -> dict:
        body = {
            "name": self.name,
            "displayName": self.display_name,
            "model": self.model,
            "state": self.state,
            "createTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created)),
            "inputConfig": {"instancesFormat": "jsonl", "gcsSource": {"uris": self.sources}},
            "outputConfig": {"predictionsFormat": "jsonl", "gcsDestination": {"outputUriPrefix": self.dest}},
        }
        if self.error:
            body["error"] = self.error
        if self.ended:
            body["endTime"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.ended))
        if self.state == "JOB_STATE_SUCCEEDED":
            body["outputInfo"] = {"gcsOutputDirectory": os.path.join(self.dest, f"prediction-model-{self.number}")}
        return body


class BatchStandIn(LocalServer):
    """The batch prediction stand-in on 127.0.0.1 (a context manager, or start()/stop())."""

    TOKEN = StandIn.TOKEN

    def __init__(
        self,
        polls_to_finish: int = 2,
        fail_jobs: tuple = (),
        line_fault: Callable[[str], str | None] | None = None,
    ):
        self.polls_to_finish = polls_to_finish
        self.fail_jobs = set(fail_jobs)
        self.line_fault = line_fault
        self.hold = threading.Event()  # while set, no job ends
        self.hold_file: str | None = None  # nor while this file exists (for a stand-in in its own process)
        self.jobs: dict[str, Job] = {}
        self.creates = 0
        self.page_size = 50  # jobs per list page when the call asks for none (or for more)
        self.list_calls: list[dict] = []  # the query of every list call: filter, pageSize, pageToken
        self.lock = threading.Lock()
        self._token_requests = 0

    def start(self) -> BatchStandIn:
        return self._serve(_Handler, name="batch-standin")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    write_adc_file = StandIn.write_adc_file  # a key file whose token_uri is self.url + "/token"

    def input_lines(self, job: Job) -> list:
        lines = []
        for source in job.sources:
            with open(source, encoding="utf-8") as handle:
                lines.extend(json.loads(line) for line in handle if line.strip())
        return lines

    def named(self, display_name: str) -> list:
        """The jobs created under ``display_name``, oldest first."""
        with self.lock:
            return [j for j in self.jobs.values() if j.display_name == display_name]

    def list_page(self, parent: str, query: dict) -> tuple[int, dict]:
        """(HTTP status, body) of a list call: one page of the jobs of ``parent`` that the filter keeps."""
        self.list_calls.append(query)
        text = query.get("filter", "")
        wanted = _NAME_FILTER.match(text) if text.strip() else None
        if text.strip() and wanted is None:
            return 400, _invalid(f'Unsupported filter (stand-in understands display_name="..."): {text!r}')
        try:
            size = int(query.get("pageSize") or 0)
            start = int(query["pageToken"].removeprefix("page-")) if query.get("pageToken") else 0
        except ValueError:
            return 400, _invalid("Invalid pageSize or pageToken (stand-in).")
        if size < 0 or start < 0:
            return 400, _invalid("Invalid pageSize or pageToken (stand-in).")
        size = min(size or self.page_size, self.page_size)
        with self.lock:
            jobs = [
                j
                for j in sorted(self.jobs.values(), key=lambda j: j.number)
                if j.name.startswith(parent + "/") and (wanted is None or j.display_name == wanted.group(1))
            ]
            body: dict = {"batchPredictionJobs": [j.resource() for j in jobs[start : start + size]]}
        if start + size < len(jobs):
            body["nextPageToken"] = f"page-{start + size}"
        return 200, body

    # ----- job life -----
    def _advance(self, job: Job) -> None:
        job.gets += 1
        if job.state in ENDED:
            return
        held = self.hold.is_set() or bool(self.hold_file and os.path.exists(self.hold_file))
        if held or job.gets < self.polls_to_finish:
            job.state = "JOB_STATE_RUNNING" if job.gets else job.state
            return
        if job.number in self.fail_jobs:
            job.state = "JOB_STATE_FAILED"
            job.error = {"code": 13, "message": "Internal error (stand-in): the batch job failed."}
            job.ended = time.time()
            return
        self._write_results(job)
        job.state = "JOB_STATE_SUCCEEDED"
        job.ended = time.time()

    def _write_results(self, job: Job) -> None:
        folder = os.path.join(job.dest, f"prediction-model-{job.number}")
        os.makedirs(folder, exist_ok=True)
        out = []
        for line in self.input_lines(job):
            request = line["request"]
            prompt = "".join(p.get("text", "") for c in request["contents"] for p in c["parts"])
            config = request.get("generationConfig") or {}
            fault = self.line_fault(prompt) if self.line_fault else None
            if fault == "missing":
                continue
            entry = {**line, "processed_time": time.strftime("%Y-%m-%dT%H:%M:%SZ")}
            if fault == "error":
                entry.update(status="Bad Request: {'error': {'code': 400, 'message': 'stand-in line failure'}}")
            else:
                text = (
                    "Not JSON at all, just prose."
                    if fault == "invalid"
                    else reply_for_schema(config.get("responseSchema"), prompt, config.get("seed"))
                )
                entry.update(
                    status="",
                    response={
                        "candidates": [
                            {"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}
                        ],
                        "usageMetadata": {
                            "promptTokenCount": len(prompt.split()),
                            "candidatesTokenCount": len(text) // 4,
                        },
                        "modelVersion": job.model,
                    },
                )
            out.append(entry)
        with open(os.path.join(folder, "predictions.jsonl"), "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(e) + "\n" for e in out)
        job.lines = len(out)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    standin: BatchStandIn

    def log_message(self, format, *args):  # noqa: A002
        pass

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {BatchStandIn.TOKEN}":
            return True
        self._send(401, {"error": {"code": 401, "message": "no valid token (stand-in)", "status": "UNAUTHENTICATED"}})
        return False

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?")[0]
        if path.endswith("/token"):
            self._send(200, {"access_token": BatchStandIn.TOKEN, "expires_in": 3600, "token_type": "Bearer"})
            return
        found = re.search(r"/(projects/[^/]+/locations/[^/]+)/batchPredictionJobs$", path)
        if not found:
            self._send(404, {"error": {"code": 404, "message": f"no route {path}", "status": "NOT_FOUND"}})
            return
        if not self._authorized():
            return
        body = json.loads(raw or b"{}")
        standin = self.standin
        with standin.lock:
            standin.creates += 1
            number = standin.creates
            job = Job(
                number=number,
                name=f"{found.group(1)}/batchPredictionJobs/{1000 + number}",
                model=body.get("model", ""),
                sources=list(body["inputConfig"]["gcsSource"]["uris"]),
                dest=body["outputConfig"]["gcsDestination"]["outputUriPrefix"],
                display_name=body.get("displayName", ""),
                created=time.time(),
            )
            standin.jobs[job.name] = job
        self._send(200, job.resource())

    def do_GET(self):  # noqa: N802
        path, _, query = self.path.partition("?")
        listed = re.search(r"/(projects/[^/]+/locations/[^/]+)/batchPredictionJobs$", path)
        if listed:
            if self._authorized():
                self._send(*self.standin.list_page(listed.group(1), dict(urllib.parse.parse_qsl(query))))
            return
        found = re.search(r"/(projects/[^/]+/locations/[^/]+/batchPredictionJobs/\d+)$", path)
        if not found or not self._authorized():
            if not found:
                self._send(404, {"error": {"code": 404, "message": f"no route {path}", "status": "NOT_FOUND"}})
            return
        with self.standin.lock:
            job = self.standin.jobs.get(found.group(1))
            if job is not None:
                self.standin._advance(job)
                body = job.resource()
        if job is None:
            self._send(404, {"error": {"code": 404, "message": "no such job", "status": "NOT_FOUND"}})
        else:
            self._send(200, body)


def _invalid(message: str) -> dict:
    return {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Serve the batch prediction stand-in until interrupted.")
    parser.add_argument("--adc-dir", default=None, help="Also write a credentials file for this stand-in there.")
    parser.add_argument("--polls-to-finish", type=int, default=2, help="Gets before a job ends.")
    parser.add_argument("--fail-job", type=int, action="append", default=[], help="Ordinal of a job that fails.")
    parser.add_argument("--hold-file", default=None, help="While this file exists, no job ends.")
    parser.add_argument("--error-every", type=int, default=0, help="Every Nth new prompt's first line fails.")
    args = parser.parse_args(argv)
    seen: dict = {}

    def line_fault(prompt):
        first = prompt not in seen
        seen.setdefault(prompt, len(seen))
        return "error" if args.error_every and first and seen[prompt] % args.error_every == 0 else None

    standin = BatchStandIn(polls_to_finish=args.polls_to_finish, fail_jobs=tuple(args.fail_job), line_fault=line_fault)
    standin.hold_file = args.hold_file
    standin.start()
    print(standin.url, standin.write_adc_file(args.adc_dir) if args.adc_dir else "", flush=True)
    try:
        while True:
            time.sleep(5)
            with standin.lock:
                states = {j.name.rsplit("/", 1)[1]: j.state.removeprefix("JOB_STATE_") for j in standin.jobs.values()}
            print(
                f"creates={standin.creates} lists={len(standin.list_calls)} jobs={states}", file=sys.stderr, flush=True
            )
    except KeyboardInterrupt:
        pass
    finally:
        standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
