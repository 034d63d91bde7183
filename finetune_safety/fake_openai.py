"""Moved to ``finetune_safety.testing.fake_openai``; this name stays for existing imports."""

from finetune_safety.testing.fake_openai import (
    JOB_ERROR,
    JOB_STATUSES,
    FakeOpenAI,
    Reply,
    Request,
    Script,
    UploadedFile,
    refusal_scorer,
)

__all__ = [
    "JOB_ERROR",
    "JOB_STATUSES",
    "FakeOpenAI",
    "Reply",
    "Request",
    "Script",
    "UploadedFile",
    "refusal_scorer",
]
