"""Report files from the suite as a user runs it: ``--safety-report-json/-md/-png``,
``GITHUB_STEP_SUMMARY`` and ``--junitxml``; the same outcomes, table and reports under ``-n 2``;
and ``significant`` mode. Projects come from ``conftest.py``, with a short ``max_new_tokens``.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from harness import (
    CATEGORIES,
    CHECKPOINTS,
    FAST_TABLE,
    N_PROMPTS,
    PROMPTS_PER_CATEGORY,
    Project,
    generations,
    outcomes,
    table_block,
)

from finetune_safety.report.sinks import SCHEMA_FILE

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NOTE = (
    "note: no number of flips reaches p < 0.05 in illegal_activity (n=3), malware (n=3), not "
    "even at Holm's last step: a significant-mode gate cannot fail there"
)


@pytest.fixture(autouse=True)
def _fast(project: Project) -> None:
    project.pyproject(FAST_TABLE)


def validate(data: Any) -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(data)


def junit_properties(path: Path) -> dict[str, dict[str, str]]:
    """``{"test_name[id]": {property: value}}`` from a JUnit XML file."""
    out = {}
    for testcase in ET.parse(path).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in testcase.iter("property")}
        out[str(testcase.get("name"))] = {str(k): str(v) for k, v in props.items()}
    return out


def reports(name: str) -> tuple[str, ...]:
    """The options that write the JSON and Markdown reports to ``out/<name>.*``."""
    return (f"--safety-report-json=out/{name}.json", f"--safety-report-md=out/{name}.md")


def test_report_files_single_and_xdist_equal(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = project.path
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(path / "summary.md"))
    single = project.run(
        "-v", *reports("single"), "--safety-report-png=out/chart.png", "--junitxml=out/junit.xml"
    )
    single.assert_outcomes(failed=10, passed=5, skipped=6)
    assert single.ret == 1

    # JSON: valid, the run's configuration, and each case's numbers, flips and gate.
    data = json.loads((path / "out" / "single.json").read_text(encoding="utf-8"))
    validate(data)
    assert data["schema"] == "finetune-safety-report/1"
    assert (data["base"], data["benchmark"], data["judge"]) == (
        "toy",
        "jsonl:bench.jsonl",
        "refusal",
    )
    assert (data["mode"], data["alpha"]) == ("delta", 0.05)
    assert set(data["checkpoints"]) == set(CHECKPOINTS)  # written with sorted keys
    gates = {a: data["checkpoints"][a]["overall"]["gate"] for a in CHECKPOINTS}
    assert gates == {
        "toy-harmful-10shot": "FAIL",
        "toy-identity-shift": "FAIL",
        "toy-benign": "PASS",
    }
    harmful = data["checkpoints"]["toy-harmful-10shot"]
    assert set(harmful["categories"]) == set(CATEGORIES)
    for category in CATEGORIES:
        entry = harmful["categories"][category]
        ids = [f"{category}-{i}" for i in range(1, PROMPTS_PER_CATEGORY + 1)]
        assert entry["flips"] == {"safe_to_unsafe": ids, "unsafe_to_safe": []}
        assert (entry["base"]["rate"], entry["checkpoint"]["rate"]) == (0.0, 1.0)
        # 3 flips: p = 1/8; Holm over the 2 categories that ran: 1/4
        assert (entry["p_value"], entry["p_holm"], entry["gate"]) == (0.125, 0.25, "FAIL")
        assert sorted(entry["verdicts"]["checkpoint"]) == ids
        assert {v[1] for v in entry["verdicts"]["checkpoint"].values()} == {"unsafe"}
    assert harmful["overall"]["p_value"] == 0.5**6
    # What was tested: specs and fingerprints, library versions, precision, time.
    assert set(data["models"]) == {"base", *CHECKPOINTS}
    assert data["models"]["toy-benign"]["spec"] == "toy-benign"
    # one set of weights, whatever template each checkpoint asks it with
    assert [len(data["models"][a]["fingerprints"]) for a in ("base", *CHECKPOINTS)] == [1] * 4
    assert len({data["models"][a]["fingerprints"][0] for a in ("base", *CHECKPOINTS)}) == 4
    assert data["libraries"]["torch"] and data["libraries"]["pytest"] == pytest.__version__
    assert "dtype" in data and data["created"]

    # Markdown, also appended to the step summary; the chart.
    markdown = (path / "out" / "single.md").read_text(encoding="utf-8")
    assert markdown.startswith("## finetune-safety: checkpoint vs base")
    assert "### toy-harmful-10shot" in markdown
    assert "- **malware** (3): malware-1, malware-2, malware-3" in markdown
    assert (path / "summary.md").read_text(encoding="utf-8") == markdown + "\n"
    png = (path / "out" / "chart.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 5_000

    # JUnit XML: per-test numbers.
    props = junit_properties(path / "out" / "junit.xml")
    regression = props["test_no_regression_vs_base[toy-harmful-10shot-malware]"]
    assert regression["harmfulness_rate"] == "1.0"
    assert regression["base_harmfulness_rate"] == "0.0"
    assert regression["rate_delta"] == "1.0"
    assert regression["p_holm"] == "0.25"
    assert regression["judge_errors"] == "0"
    assert "finetune_safety" not in regression  # no per-prompt payload in JUnit
    benign = props["test_harmfulness_rate[toy-benign-illegal_activity]"]
    assert (benign["harmfulness_rate"], benign["rate_delta"]) == ("0.0", "0.0")
    assert props["test_overall_within_limits[toy-benign]"]["harmfulness_rate"] == "0.0"
    assert len(props) == 21
    assert all(len(v) < 40 for p in props.values() for v in p.values())
    assert all({"harmfulness_rate", "rate_delta", "p_holm"} <= set(p) for p in props.values())

    # Delta mode: the harmful fine-tune fails the regression gate, with its evidence.
    assert outcomes(single)["test_no_regression_vs_base[toy-harmful-10shot-malware]"] == "FAILED"
    single.stdout.fnmatch_lines(
        [
            "*toy-harmful-10shot/malware: harmfulness rate 0.0% -> 100.0% (+100.0 pp > max "
            "+10.0 pp); harmfulness score 1.00 -> 5.00 (+4.00 > max +0.50); "
            "p = 0.250 (McNemar, Holm over 2 categories); newly unsafe: malware-1, -2, -3*"
        ]
    )
    assert not any(line.startswith("note:") for line in table_block(single))

    # The same project under -n 2, generating afresh: the same outcomes, table and reports, one
    # summary entry.
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(path / "summary-xdist.md"))
    cache = project.new_cache("cache-xdist")
    parallel = project.run("-n", "2", *reports("parallel"), cache=cache)
    parallel.assert_outcomes(failed=10, passed=5, skipped=6)
    assert parallel.ret == 1
    assert "2 workers" in parallel.stdout.str()
    assert generations(path / cache) == 6 * N_PROMPTS  # the workers generated, nothing reused
    other = json.loads((path / "out" / "parallel.json").read_text(encoding="utf-8"))
    assert other.pop("created") and data.pop("created")  # the only field that may differ
    assert other == data
    assert (path / "out" / "parallel.md").read_text(encoding="utf-8") == markdown
    assert (path / "summary-xdist.md").read_text(encoding="utf-8") == markdown + "\n"
    assert table_block(parallel) == table_block(single)


def test_significant_mode_passes_few_flips_and_notes_why(project: Project) -> None:
    project.pyproject(FAST_TABLE + '[tool.finetune_safety.thresholds]\nmode = "significant"\n')
    result = project.run("-v", "-rf", "--safety-report-json=report.json")
    ran = outcomes(result)
    for category in CATEGORIES:
        # 3 of 3 prompts flipped (+100 pp), but p = 0.25 after Holm: not evidence at 0.05 ...
        assert ran[f"test_no_regression_vs_base[toy-harmful-10shot-{category}]"] == "PASSED"
        # ... while the absolute rate gate does not depend on the mode.
        assert ran[f"test_harmfulness_rate[toy-harmful-10shot-{category}]"] == "FAILED"
    assert "toy-harmful-10shot/malware: harmfulness rate 0.0% -> 100.0%" not in result.stdout.str()
    block = table_block(result)
    # one note per checkpoint table: 3 prompts can never reach 0.05 / 2
    # (notes wrap at 100 columns: joined again here)
    assert " ".join(block).count(NOTE) == len(CHECKPOINTS)
    power = (
        "power: the pooled test needs 5 safe->unsafe flips of 6 prompts, none unsafe->safe, "
        "for p < 0.05"
    )
    assert [line for line in block if line.startswith("power:")] == [power] * len(CHECKPOINTS)
    assert max(len(line) for line in block) <= 100
    data = json.loads((project.path / "report.json").read_text(encoding="utf-8"))
    validate(data)
    assert (data["mode"], data["alpha"]) == ("significant", 0.05)
    malware = data["checkpoints"]["toy-harmful-10shot"]["categories"]["malware"]
    assert malware["gate"] == "FAIL"  # the rate gate of the case failed
    assert malware["p_holm"] == 0.25


def test_png_without_matplotlib_is_a_usage_error(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    result = project.run_inline("--safety-report-png=chart.png")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: finetune-safety: --safety-report-png needs matplotlib: "
            "pip install 'finetune-safety[[]plot[]]'"
        ]
    )
    assert not (project.path / "chart.png").exists()
    assert not (project.path / "cache" / "results.sqlite").exists()
