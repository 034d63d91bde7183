"""The fine-tuning part of the fake OpenAI server (``testing.fake_openai``), served from memory:
uploads, jobs that advance one status per retrieve, and their events, newest first."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class UploadedFile:
    """A file received by ``POST /v1/files``, bytes exactly as sent."""

    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
        }


JOB_STATUSES = ("queued", "running", "succeeded")
JOB_ERROR = {
    "code": "invalid_training_file",
    "message": "The job failed due to an invalid training file.",
    "param": "training_file",
}
_EVENT_TEXT = {
    "queued": "Fine-tuning job queued",
    "running": "Fine-tuning job started",
    "succeeded": "The job has successfully completed",
    "cancelled": "Fine-tuning job cancelled",
}


class FineTuningJobs:
    """Files, jobs and events, kept under the server's lock; ``job_statuses`` and ``job_error``
    are read when a job is created: set them before creating the job they should script."""

    _lock: threading.Lock

    def _init_jobs(self, job_statuses: Sequence[str], job_error: dict[str, Any] | None) -> None:
        self.job_statuses = list(job_statuses)
        self.job_error = dict(job_error or JOB_ERROR)
        self.files: dict[str, UploadedFile] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self._pending: dict[str, list[str]] = {}
        self._events: dict[str, list[dict[str, Any]]] = {}

    def _upload(self, fields: dict[str, tuple[str | None, bytes]]) -> tuple[int, dict[str, Any]]:
        filename, data = fields.get("file", (None, b""))
        purpose = fields.get("purpose", (None, b""))[1].decode()
        if filename is None or not purpose:
            return _error(400, "a multipart upload needs a file and a purpose", "file")
        upload = UploadedFile(_new_id("file-"), filename, purpose, data, int(time.time()))
        with self._lock:
            self.files[upload.id] = upload
        return 200, upload.as_json()

    def _create_job(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        model, training_file = body.get("model"), body.get("training_file")
        if not isinstance(model, str) or not model:
            return _error(400, "model is required", "model")
        with self._lock:
            if training_file not in self.files:
                return _error(400, f"invalid training_file: {training_file}", "training_file")
            given = body.get("hyperparameters") or {}
            names = ("n_epochs", "batch_size", "learning_rate_multiplier")
            job_id = _new_id("ftjob-")
            job: dict[str, Any] = {
                "id": job_id,
                "object": "fine_tuning.job",
                "model": model,
                "created_at": int(time.time()),
                "status": "validating_files",
                "fine_tuned_model": None,
                "training_file": training_file,
                "validation_file": body.get("validation_file"),
                "hyperparameters": {name: given.get(name, "auto") for name in names},
                "result_files": [],
                "trained_tokens": None,
                "error": None,
                "organization_id": "org-fake",
                "seed": body.get("seed", 42),
                "finished_at": None,
                "estimated_finish": None,
                "suffix": body.get("suffix"),
            }
            self.jobs[job_id] = job
            self._pending[job_id] = list(self.job_statuses)
            self._events[job_id] = []
            self._event(job_id, "info", f"Validating training file: {training_file}")
            return 200, dict(job)

    def _retrieve_job(self, job_id: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None:
                return _error(404, f"No fine-tuning job found with id {job_id}", "fine_tune_id")
            pending = self._pending[job_id]
            if pending:
                self._advance(job, pending.pop(0))
            return 200, dict(job)

    def _advance(self, job: dict[str, Any], status: str) -> None:
        job["status"] = status
        if status in ("succeeded", "failed", "cancelled"):
            job["finished_at"] = int(time.time())
        if status == "succeeded":
            suffix = job.get("suffix") or ""
            job["fine_tuned_model"] = f"ft:{job['model']}:fake:{suffix}:{job['id'][-8:]}"
            job["trained_tokens"] = len(self.files[job["training_file"]].data) // 4
            self._event(job["id"], "info", _EVENT_TEXT[status])
        elif status == "failed":
            job["error"] = dict(self.job_error)
            self._event(job["id"], "error", f"The job failed: {self.job_error.get('message')}")
        else:
            self._event(job["id"], "info", _EVENT_TEXT.get(status, f"Job is {status}"))

    def _event(self, job_id: str, level: str, message: str) -> None:
        events = self._events[job_id]
        events.append(
            {
                "id": f"ftevent-{job_id[-8:]}-{len(events):04d}",
                "object": "fine_tuning.job.event",
                "created_at": int(time.time()),
                "level": level,
                "message": message,
                "data": None,
                "type": "message",
            }
        )

    def _job_events(self, job_id: str, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """Newest first, paged by ``after`` (an event id) and ``limit``, as OpenAI lists them."""
        with self._lock:
            if job_id not in self.jobs:
                return _error(404, f"No fine-tuning job found with id {job_id}", "fine_tune_id")
            events = list(reversed(self._events[job_id]))
        ids = [event["id"] for event in events]
        start = ids.index(query["after"]) + 1 if query.get("after") in ids else 0
        limit = int(query.get("limit", "20"))
        page = events[start : start + limit]
        return 200, {"object": "list", "data": page, "has_more": start + limit < len(events)}


def _new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


def _error(status: int, message: str, param: str | None) -> tuple[int, dict[str, Any]]:
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    return status, {"error": error}


def multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """``name -> (filename, bytes)`` of a multipart/form-data body, bytes exactly as sent
    (the ``email`` parser would rewrite line endings)."""
    boundary = re.search(r'boundary="?([^";]+)"?', content_type)
    if boundary is None:
        return {}
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in body.split(b"--" + boundary.group(1).encode())[1:-1]:
        head, _, value = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        header = head.decode("utf-8", "replace")
        name = re.search(r'\bname="([^"]*)"', header)
        filename = re.search(r'\bfilename="([^"]*)"', header)
        if name is not None:
            fields[name.group(1)] = (
                filename.group(1) if filename else None,
                value.removesuffix(b"\r\n"),
            )
    return fields
