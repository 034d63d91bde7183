"""Reports: case records, the run's aggregate, the terminal and Markdown tables, the files
(JSON, Markdown, PNG, GitHub step summary) and ``diff`` between two runs."""

from finetune_safety.report.aggregate import SCHEMA, RunReport
from finetune_safety.report.diff import DiffError
from finetune_safety.report.record import PROPERTY, CaseRecord, PromptVerdict, RecordError
from finetune_safety.report.render import delta_markdown, delta_table
from finetune_safety.report.sinks import ReportFiles, junit_properties, require_matplotlib

__all__ = [
    "PROPERTY", "SCHEMA", "CaseRecord", "DiffError", "PromptVerdict", "RecordError",
    "ReportFiles", "RunReport", "delta_markdown", "delta_table", "junit_properties",
    "require_matplotlib",
]  # fmt: skip
