"""Registries by scheme: built-ins, code registration, and installed packages' entry points (which
the command line reads as the pytest plugin does)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from finetune_safety import cli
from finetune_safety._util.registry import Registry, RegistryError
from finetune_safety.benchmarks import BENCHMARKS, load_benchmark
from finetune_safety.catalog import resolve
from finetune_safety.errors import BenchmarkError, JudgeError
from finetune_safety.judges import JUDGES, JudgeSettings, make_judge, register_judge
from finetune_safety.judges.refusal import RefusalJudge
from finetune_safety.models import TARGETS, ModelSpec, TargetSettings
from finetune_safety.testing.doubles import DictTarget
from finetune_safety.values import Label, Prompt, Verdict

#: An installed extension package, as a user would ship one.
EXTENSION = """
from finetune_safety.testing.doubles import DictTarget, MarkerJudge
from finetune_safety.values import Prompt


def make_judge(spec, settings):
    return MarkerJudge()


def make_target(spec, settings):
    return DictTarget(settings.name or spec.model, {"malware": "UNSAFE placeholder"})


def load(spec, settings):
    return [Prompt(f"{c}-1", c, f"About {c}.") for c in ("illegal_activity", "malware")]
"""

ENTRY_POINTS = """
[finetune_safety.judges]
marker = safetyext:make_judge
broken = safetyext_missing:make_judge

[finetune_safety.targets]
dict = safetyext:make_target

[finetune_safety.benchmarks]
twocat = safetyext:load
"""


class Judged:
    judge_id = "always-safe/v1"

    def judge(self, items: Sequence[tuple[Prompt, str]]) -> list[Verdict]:
        return [Verdict(1, Label.SAFE, "", self.judge_id) for _ in items]


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``safetyext`` installed on sys.path with its entry points; forgotten afterwards."""
    site = tmp_path / "site"
    info = site / "safetyext-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: safetyext\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    (site / "safetyext.py").write_text(textwrap.dedent(EXTENSION))
    monkeypatch.syspath_prepend(str(site))
    yield site
    for registry, scheme in ((JUDGES, "marker"), (TARGETS, "dict"), (BENCHMARKS, "twocat")):
        registry.unregister(scheme)


def test_built_ins_are_registered_like_any_other() -> None:
    assert {"refusal", "openai", "hf"} <= set(JUDGES.schemes())
    assert {"smoke", "hexphi", "advbench", "jsonl"} <= set(BENCHMARKS.schemes())
    assert "openai" in TARGETS.schemes()


def test_code_registration_reaches_make_judge_and_error_messages() -> None:
    register_judge("always-safe", lambda spec, settings: Judged())
    try:
        assert make_judge("always-safe").judge_id == "always-safe/v1"
        assert make_judge("always-safe:any args").judge_id == "always-safe/v1"
        with pytest.raises(JudgeError, match=r"known judges: refusal, .*always-safe:\.\.\."):
            make_judge("oracle")
    finally:
        JUDGES.unregister("always-safe")
    with pytest.raises(JudgeError, match="unknown judge 'always-safe'"):
        make_judge("always-safe")


def test_a_second_factory_for_a_scheme_needs_replace() -> None:
    registry: Registry[Callable[..., object]] = Registry("judge")
    registry.register("x", RefusalJudge)
    registry.register("x", RefusalJudge)  # the same factory again is harmless
    with pytest.raises(RegistryError, match=r"judge scheme 'x' is already registered"):
        registry.register("x", Judged)
    registry.register("x", Judged, replace=True)
    assert registry.get("x") is Judged


@pytest.mark.parametrize("scheme", ["", "a:b", " x"])
def test_a_scheme_is_one_word(scheme: str) -> None:
    with pytest.raises(RegistryError, match="expected a word"):
        Registry[Callable[..., object]]("target").register(scheme, RefusalJudge)


def test_entry_points_add_judges_targets_and_benchmarks(installed: Path, tmp_path: Path) -> None:
    assert {"marker", "broken"} <= set(JUDGES.schemes())
    assert make_judge("marker", JudgeSettings()).judge_id == "marker/v1:UNSAFE"
    prompts = load_benchmark("twocat")
    assert [p.id for p in prompts] == ["illegal_activity-1", "malware-1"]
    target = resolve(ModelSpec("dict:harmful"), tmp_path, name="ft")
    assert isinstance(target, DictTarget) and target.name == "ft"
    with pytest.raises(BenchmarkError, match=r"category map applies only to hexphi"):
        load_benchmark("twocat", category_map={1: "illegal_activity"})


def test_a_broken_entry_point_is_one_line_naming_it(installed: Path) -> None:
    with pytest.raises(RegistryError) as caught:
        make_judge("broken")
    message = str(caught.value)
    assert "judge scheme 'broken': entry point 'safetyext_missing:make_judge'" in message
    assert "finetune_safety.judges" in message and "\n" not in message


def test_cli_evaluate_uses_installed_extensions(
    installed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "records.jsonl"
    argv = ["evaluate", "--model", "dict:harmful", "--benchmark", "twocat", "--judge", "marker"]
    code = cli.main([*argv, "--cache-dir", str(tmp_path / "cache"), "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "benchmark: twocat (2 prompts), judge: marker/v1:UNSAFE" in printed
    rows = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert (rows["malware-1"]["label"], rows["illegal_activity-1"]["label"]) == ("unsafe", "safe")


def test_cli_reports_an_unknown_scheme_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["evaluate", "--benchmark", "nope:x", "--cache-dir", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("finetune-safety: error: unknown benchmark spec 'nope:x'")
    assert "valid schemes: smoke, hexphi:PATH, advbench:PATH, jsonl:PATH" in err


def test_plugged_prompts_are_checked() -> None:
    from finetune_safety.benchmarks import checked_prompts

    one = Prompt("a-1", "malware", "x")
    assert checked_prompts("s", [one]) == [one]
    for bad, message in [
        ([], "no prompts"),
        ([one, one], "duplicate prompt id 'a-1'"),
        (["text"], "not a Prompt"),
        (None, "the loader returned no list of prompts"),
    ]:
        with pytest.raises(BenchmarkError, match=f"benchmark 's': {message}"):
            checked_prompts("s", bad)


def test_target_settings_reach_the_factory(tmp_path: Path) -> None:
    seen: list[TargetSettings] = []

    def factory(spec: ModelSpec, settings: TargetSettings) -> DictTarget:
        seen.append(settings)
        return DictTarget(settings.name or "x", {})

    TARGETS.register("seen", factory)
    try:
        resolve(ModelSpec("seen:m"), tmp_path, name="alias")
    finally:
        TARGETS.unregister("seen")
    assert seen == [TargetSettings(tmp_path, "alias", None, None)]
