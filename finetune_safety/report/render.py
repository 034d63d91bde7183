"""The delta table as text: for the terminal (at most 100 columns) and as Markdown."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from tabulate import tabulate

from finetune_safety.evaluation.agreement import JudgePair
from finetune_safety.evaluation.stats import wilson
from finetune_safety.report.aggregate import Block, Row, RunReport

#: Rates in percent, score as base->checkpoint, n as judged/prompts; p Holm-adjusted per category
#: (the overall row's is its own pooled test). Fits 100 columns with HEx-PHI's longest slug.
HEADERS = ["category", "n", "score", "base", "rate [95% CI]", "Δ pp", "p", "gate"]
WIDTH = 100
#: Flipped prompt ids listed per case in Markdown; the rest are counted.
MD_FLIPS = 10


def _num(value: float | None, fmt: str, scale: float = 1) -> str:
    return "-" if value is None else format(value * scale, fmt)


def _delta(a: float | None, b: float | None, fmt: str, scale: float = 1) -> str:
    return "-" if a is None or b is None else format((b - a) * scale, fmt)


def _p(p: float | None) -> str:
    return "-" if p is None else ("<0.001" if p < 0.001 else f"{p:.3f}")


def cells(row: Row) -> list[str]:
    """Score as ``base->checkpoint``, rates in percent; ``!`` marks a base over max_rate."""
    base, result = row.base, row.result
    low, high = wilson(result.n_unsafe, result.n_judged)
    interval = f" [{100 * low:.0f}-{100 * high:.0f}]" if result.n_judged else ""
    return [
        row.name,
        f"{result.n_judged}/{result.n}",
        f"{_num(base.score, '.2f')}->{_num(result.score, '.2f')}",
        _num(base.rate, ".1f", 100) + ("!" if row.base_over else ""),
        _num(result.rate, ".1f", 100) + interval,
        _delta(base.rate, result.rate, "+.1f", 100),
        _p(row.p),
        row.gate,
    ]


#: The prefill-depth curve's table: a row per depth k, the base prefilled alike; p is the
#: pooled McNemar test's.
CURVE_HEADERS = ["prefill", *HEADERS[1:]]


def _grid(rows: Sequence[Row], fmt: str, headers: Sequence[str] = HEADERS) -> str:
    return tabulate(
        [cells(row) for row in rows], headers=headers, tablefmt=fmt, disable_numparse=True
    )


def _tables(block: Block, fmt: str) -> list[str]:
    """The category table (when categories ran) and the prefill-depth curve (when it ran)."""
    tables = [_grid(block.rows, fmt)] if block.rows else []
    return tables + ([_grid(block.curve, fmt, CURVE_HEADERS)] if block.curve else [])


def agreement_lines(pairs: Sequence[JudgePair], judges: Sequence[str], combine: str) -> list[str]:
    """With several judges (their names, in order): how they combine, then each pair's kappa
    over the run's answers and the answers they disagree on (the first ``MD_FLIPS``)."""
    if len(judges) < 2:
        return []
    lines = [f"judges, combined {combine}: {', '.join(judges)}"]
    for pair in pairs:
        a = pair.agreement
        kappa = "n/a" if a.kappa is None else f"{a.kappa:.2f}"
        interval = a.kappa_interval
        ci = f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval is not None else ""
        errors = f" ({a.errors} with a judge error left out)" if a.errors else ""
        ids = pair.disagree
        more = f", and {len(ids) - MD_FLIPS} more" if len(ids) > MD_FLIPS else ""
        listed = f": {', '.join(ids[:MD_FLIPS])}{more}" if ids else ""
        lines.append(
            f"agreement {judges[pair.first]} ~ {judges[pair.second]}: kappa {kappa}{ci} over "
            f"{a.n} answers{errors}; {len(ids)} disagree{listed}"
        )
    return lines


def delta_table(
    report: RunReport,
    category_order: Sequence[str],
    alias_order: Sequence[str],
    alpha: float | None,
    judges: Sequence[str] = (),
    combine: str = "any",
) -> str:
    """One table per checkpoint (configured order): the categories that ran, then overall;
    with several judges, a footer of their agreement."""
    blocks = []
    for block in report.blocks(category_order, alias_order, alpha):
        notes = [textwrap.fill(n, WIDTH) for n in block.notes]
        blocks.append("\n".join([block.alias, *_tables(block, "simple"), *notes]))
    footer = [
        textwrap.fill(line, WIDTH)
        for line in agreement_lines(report.judge_pairs(), judges, combine)
    ]
    return "\n\n".join([*blocks, *(["\n".join(footer)] if footer else [])])


def delta_markdown(
    report: RunReport,
    category_order: Sequence[str],
    alias_order: Sequence[str],
    alpha: float | None,
    judges: Sequence[str] = (),
    combine: str = "any",
) -> str:
    """GitHub-flavoured Markdown: a table per checkpoint and its safe -> unsafe flips; with
    several judges, their agreement."""
    parts = ["## finetune-safety: checkpoint vs base\n"]
    for block in report.blocks(category_order, alias_order, alpha):
        parts.append(f"### {block.alias}\n")
        parts += [table + "\n" for table in _tables(block, "github")]
        parts += [f"> {note}\n" for note in block.notes]
        flips = [_md_flips(category, ids) for category, ids in block.flips]
        flips = [line for line in flips if line]
        if flips:
            parts.append(
                "Safe for the base, unsafe for the checkpoint:\n\n" + "\n".join(flips) + "\n"
            )
    footer = agreement_lines(report.judge_pairs(), judges, combine)
    if footer:
        parts.append("### Judges\n\n" + "\n".join(f"- {line}" for line in footer) + "\n")
    return "\n".join(parts)


def _md_flips(category: str, ids: Sequence[str]) -> str:
    """``- **malware** (12): malware-1, ..., and 2 more``; empty when nothing flipped."""
    if not ids:
        return ""
    more = f", and {len(ids) - MD_FLIPS} more" if len(ids) > MD_FLIPS else ""
    return f"- **{category}** ({len(ids)}): {', '.join(ids[:MD_FLIPS])}{more}"
