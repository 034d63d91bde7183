"""Where a run report goes: JSON and Markdown files, GitHub's step summary, a PNG chart, JUnit
properties.

matplotlib is an optional extra (``pip install 'finetune-safety[plot]'``); asking for a chart
without it is a usage error at the start of the run, not a crash at its end.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from finetune_safety.config import BASE_ALIAS, SafetyConfig
from finetune_safety.errors import FinetuneSafetyError
from finetune_safety.finetune.recipes import Recipe
from finetune_safety.models import ModelSpec
from finetune_safety.models.endpoint import redact
from finetune_safety.report.aggregate import RunReport
from finetune_safety.report.record import CaseRecord
from finetune_safety.report.render import delta_markdown

#: The libraries whose versions can change an answer or a verdict, recorded in the JSON report.
LIBRARIES = ("finetune-safety", "torch", "transformers", "peft", "tokenizers", "openai", "pytest")

SCHEMA_FILE = Path(__file__).with_name("report.schema.json")


def junit_properties(case: CaseRecord) -> list[tuple[str, object]]:
    """Small per-test properties, so JUnit XML carries the numbers a CI dashboard shows."""
    return [
        ("harmfulness_rate", case.result.rate),
        ("base_harmfulness_rate", case.base.rate),
        ("rate_delta", case.rate_delta),
        ("score_delta", case.score_delta),
        ("p_holm", case.p_holm),
        ("judge_errors", case.result.n_error),
    ]


def library_versions() -> dict[str, str | None]:
    """Installed versions (None where absent), read from package metadata: nothing imported."""
    found: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def describe_spec(spec: ModelSpec | Recipe) -> str:
    """A model spec as the report names it, credentials redacted."""
    if isinstance(spec, Recipe):
        return f"recipe: {spec.preset or 'custom'} fine-tune of {spec.base} on {spec.data}"
    text = spec.model or spec.adapter or ""
    if spec.model and spec.adapter:
        text += f" + adapter {spec.adapter}"
    return redact(text) or text


def model_meta(
    config: SafetyConfig, fingerprints: dict[str, dict[str, str]]
) -> dict[str, dict[str, Any]]:
    """Spec and fingerprint of the base and of every checkpoint that ran."""
    models: dict[str, dict[str, Any]] = {}
    base = {fp for prints in fingerprints.values() for k, fp in prints.items() if k == "base"}
    models[BASE_ALIAS] = {"spec": describe_spec(config.base), "fingerprints": sorted(base)}
    for alias, spec in config.checkpoints.items():
        # Under a deployment condition a checkpoint's cases are named ``ALIAS@CONDITION``.
        ran = [p for name, p in fingerprints.items() if name.startswith(f"{alias}@")]
        if alias in fingerprints or ran:
            fingerprint = (fingerprints.get(alias) or ran[0]).get("checkpoint")
            models[alias] = {"spec": describe_spec(spec), "fingerprints": [fingerprint]}
    return models


def prefill_meta(config: SafetyConfig) -> dict[str, Any]:
    """Where the prefill-depth curve's prefixes came from and what the judge read."""
    source = config.prefix_file or config.prefix_model
    text = str(source) if isinstance(source, Path) else describe_spec(source or ModelSpec())
    return {
        "depths": list(config.prefill_depths),
        "source": text,
        "judge_reads": config.prefill_judge,
    }


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise FinetuneSafetyError(
            "--safety-report-png needs matplotlib: pip install 'finetune-safety[plot]'"
        ) from None


def draw_png(report: dict[str, Any], path: Path) -> None:
    """Per category, base vs checkpoint harmfulness rate with Wilson 95% intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    checkpoints = report["checkpoints"]
    curves = any("prefill_depth" in data for data in checkpoints.values())
    fig, axes = plt.subplots(
        len(checkpoints),
        2 if curves else 1,
        figsize=(15 if curves else 10, 3.2 * len(checkpoints)),
        squeeze=False,
    )
    for ax, (alias, data) in zip(axes[:, 0], checkpoints.items(), strict=True):
        names = list(data["categories"])
        for offset, side, colour in ((-0.2, "base", "#4c72b0"), (0.2, "checkpoint", "#dd8452")):
            sides = [data["categories"][n][side] for n in names]
            rates = [100 * (d["rate"] or 0) for d in sides]
            low = [max(0.0, r - 100 * d["rate_ci95"][0]) for r, d in zip(rates, sides, strict=True)]
            high = [
                max(0.0, 100 * d["rate_ci95"][1] - r) for r, d in zip(rates, sides, strict=True)
            ]
            xs = [i + offset for i in range(len(names))]
            ax.bar(xs, rates, width=0.4, label=side, color=colour)
            ax.errorbar(xs, rates, yerr=[low, high], fmt="none", ecolor="black", capsize=3)
        limits = [data["categories"][n]["max_rate"] for n in names]
        drawn = [(i, 100 * limit) for i, limit in enumerate(limits) if limit is not None]
        if drawn:  # each category's own max_rate, as a dashed line across its pair of bars
            ax.hlines(
                [y for _, y in drawn],
                [i - 0.45 for i, _ in drawn],
                [i + 0.45 for i, _ in drawn],
                colors="#c44e52",
                linestyles="dashed",
                label="max_rate",
            )
        ax.set_title(f"{alias}: harmfulness rate by category (95% Wilson intervals)")
        ax.set_ylabel("rate (%)")
        ax.set_ylim(0, 105)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if curves:
        for ax, (alias, data) in zip(axes[:, 1], checkpoints.items(), strict=True):
            _draw_curve(ax, alias, data.get("prefill_depth", {}))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _draw_curve(ax: Any, alias: str, curve: dict[str, Any]) -> None:
    """The prefill-depth curve: harmfulness rate against k, base and checkpoint, with their
    Wilson 95% intervals as bands."""
    depths = sorted(curve, key=int)
    for side, colour in (("base", "#4c72b0"), ("checkpoint", "#dd8452")):
        points = [curve[k][side] for k in depths]
        xs = [int(k) for k in depths]
        ax.plot(xs, [100 * (p["rate"] or 0) for p in points], marker="o", label=side, color=colour)
        low = [100 * p["rate_ci95"][0] for p in points]
        high = [100 * p["rate_ci95"][1] for p in points]
        ax.fill_between(xs, low, high, color=colour, alpha=0.15)
    ax.set_title(f"{alias}: rate by prefill depth k")
    ax.set_xlabel("prefilled tokens of a harmful answer (k)")
    ax.set_ylabel("rate (%)")
    ax.set_ylim(0, 105)
    if depths:
        ax.legend(loc="upper left")


@dataclass(frozen=True)
class ReportFiles:
    """The destinations a run asked for; ``None`` means not wanted."""

    json: str | None = None
    markdown: str | None = None
    png: str | None = None
    step_summary: str | None = None

    def write(
        self,
        report: RunReport,
        config: SafetyConfig,
        categories: Sequence[str],
        aliases: Sequence[str],
        judge_id: str | None = None,
    ) -> None:
        """``judge_id``: the run's judge with its version and rules, as its verdicts name it."""
        limits = config.thresholds
        decoding = config.decoding()
        meta: dict[str, Any] = {
            "base": redact(config.base.model or config.base.adapter),
            "benchmark": config.benchmark,
            "judge": ", ".join(redact(spec) for spec in config.judges),
            **({"judge_id": redact(judge_id)} if judge_id is not None else {}),
            # What decides the answers besides the models: ``diff`` compares it.
            "decoding": {
                "max_new_tokens": decoding.max_new_tokens,
                "max_prompt_tokens": decoding.max_prompt_tokens,
            },
            "mode": limits.mode,
            "alpha": limits.alpha,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "models": model_meta(config, report.fingerprints()),
            "libraries": library_versions(),
            # Precision of the answers: the configured ``dtype`` where the config has one,
            # else null (each model's default: float32 on CPU).
            "dtype": config.dtype,
        }
        several = [redact(spec) for spec in config.judges] if len(config.judges) > 1 else []
        if several:
            meta |= {"judges": several, "judge_combine": config.judge_combine}
        if config.prefill_depths:
            meta["prefill"] = prefill_meta(config)
        data = report.to_json(meta, categories, aliases, several)
        if self.json:
            _write(Path(self.json), json.dumps(data, indent=2) + "\n")
        markdown = delta_markdown(
            report, categories, aliases, limits.significance, several, config.judge_combine
        )
        if self.markdown:
            _write(Path(self.markdown), markdown)
        if self.step_summary:
            with Path(self.step_summary).open("a", encoding="utf-8") as summary:
                summary.write(markdown + "\n")
        if self.png:
            draw_png(data, Path(self.png))


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
