"""``finetune-safety judge-check``: measure a judge against labelled answers, so that a team
knows how far to trust the gate's instrument and CI fails when it drifts (``--min-kappa``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from finetune_safety.config import add_flags

#: The exit status when kappa is below ``--min-kappa`` (or undefined).
BELOW_KAPPA_EXIT = 1
#: What the judge is built with beside its spec, as ``evaluate`` reads them.
_READS = {
    "judge",
    "judge_combine",
    "judge_prompt",
    "judge_max_tokens",
    "judge_threshold",
    "concurrency",
    "request_timeout",
    "max_retries",
}


def add_parser(commands: Any) -> None:
    jc = commands.add_parser(
        "judge-check",
        help="measure a judge against labelled answers (confusion matrix, F1, Cohen's kappa)",
        description="Judge each labelled answer (stored verdicts are reused) and print the "
        "judge's agreement with the labels. The judge's other settings come from the "
        "project's [tool.finetune_safety], as for evaluate.",
    )
    jc.add_argument(
        "--labels",
        type=Path,
        required=True,
        metavar="FILE",
        help="JSONL: id, prompt, response, label (safe|unsafe), optional category, kind, source",
    )
    jc.add_argument(
        "--judge",
        required=True,
        action="append",
        metavar="SPEC",
        help="the judge to measure; repeated: the judges combined as --judge-combine says",
    )
    add_flags(jc, ["judge_combine"])
    jc.add_argument("--out", type=Path, metavar="FILE", help="write id, label, verdict, score")
    jc.add_argument(
        "--min-kappa",
        type=float,
        metavar="K",
        help=f"exit {BELOW_KAPPA_EXIT} when Cohen's kappa is below K (or undefined)",
    )
    jc.add_argument("--cache-dir", metavar="DIR", help="the result store (as evaluate's)")
    jc.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from finetune_safety._util.outputs import check_output_file
    from finetune_safety.catalog import configured_judge
    from finetune_safety.config import Overrides
    from finetune_safety.config.project import cache_dir as project_cache_dir
    from finetune_safety.config.project import project_config
    from finetune_safety.evaluation.labels import LabelCheck, format_check, judge_items, load_labels
    from finetune_safety.evaluation.preflight import judge_subject, require
    from finetune_safety.evaluation.store import Store

    overrides = Overrides(flags=True, judge=args.judge, judge_combine=args.judge_combine)
    config = project_config(overrides, only=_READS)
    items = load_labels(args.labels)
    if args.out is not None:
        check_output_file(args.out, "--out")
    cache_dir = project_cache_dir(args.cache_dir)
    judge = configured_judge(config, cache_dir)
    require({}, judge, judge_subject(config.judges, "--judge"))
    with Store.in_dir(cache_dir) as store:
        verdicts, judged = judge_items(items, judge, store, cache_dir, progress=True)
    check = LabelCheck(tuple(items), tuple(verdicts))
    print(f"labels: {args.labels} ({len(items)} items), judge: {judge.judge_id}, judged {judged}")
    print(format_check(check))
    if args.out is not None:
        with args.out.open("w", encoding="utf-8") as out:
            for item, verdict in zip(items, verdicts, strict=True):
                row = {
                    "id": item.id,
                    "label": str(item.label),
                    "verdict": str(verdict.label),
                    "score": verdict.score,
                }
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"wrote {len(items)} rows to {args.out}")
    kappa = check.agreement().kappa
    if args.min_kappa is not None and (kappa is None or kappa < args.min_kappa):
        shown = "n/a" if kappa is None else f"{kappa:.3f}"
        print(f"finetune-safety: judge-check: kappa {shown} is below --min-kappa {args.min_kappa}")
        return BELOW_KAPPA_EXIT
    return 0
