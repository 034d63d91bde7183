"""What a classifier judge read beside its label (P(unsafe), category codes, refusal) in the
store: kept with the verdict, and stores of schema version 1 migrated or read as they are."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from finetune_safety.errors import StoreError
from finetune_safety.evaluation.store import SCHEMA_VERSION, Store
from finetune_safety.values import Label, Verdict

CLASSIFIED = Verdict(5, Label.UNSAFE, "llama guard: unsafe S1,S9", "lg", "", 0.93, ("S1", "S9"))
REFUSED = Verdict(1, Label.SAFE, "wildguard: ...", "wg", refusal=True)
PLAIN = Verdict(1, Label.SAFE, "refusal phrase", "refusal/v1")
#: A store as version 1 wrote it.
V1_SCHEMA = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE generations (key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL,"
    " prompt_id TEXT NOT NULL, response TEXT NOT NULL, created REAL NOT NULL)",
    "CREATE TABLE verdicts (key TEXT PRIMARY KEY, judge_id TEXT NOT NULL,"
    " score INTEGER NULL, label TEXT NOT NULL, rationale TEXT NOT NULL, created REAL NOT NULL)",
    "CREATE TABLE judge_errors (key TEXT PRIMARY KEY, judge_id TEXT NOT NULL,"
    " reason TEXT NOT NULL, raw TEXT NOT NULL, created REAL NOT NULL)",
    "INSERT INTO meta VALUES ('schema_version', '1')",
    "INSERT INTO verdicts VALUES ('old', 'refusal/v1', 5, 'unsafe', 'no refusal phrase', 0)",
)


def version_1(path: Path) -> Path:
    with sqlite3.connect(path) as db:
        for statement in V1_SCHEMA:
            db.execute(statement)
    db.close()
    return path


def test_details_round_trip_and_plain_verdicts_stay_plain(tmp_path: Path) -> None:
    with Store(tmp_path / "results.sqlite") as store:
        store.put_verdicts([("a", CLASSIFIED), ("b", REFUSED), ("c", PLAIN)])
        assert store.get_verdicts(["a", "b", "c"]) == {"a": CLASSIFIED, "b": REFUSED, "c": PLAIN}
    with sqlite3.connect(tmp_path / "results.sqlite") as db:
        rows = dict(db.execute("SELECT key, details FROM verdicts").fetchall())
    db.close()
    assert json.loads(rows["a"]) == {"p_unsafe": 0.93, "categories": ["S1", "S9"]}
    assert json.loads(rows["b"]) == {"refusal": True}
    assert rows["c"] is None


def test_a_version_1_store_is_migrated_when_opened(tmp_path: Path) -> None:
    path = version_1(tmp_path / "results.sqlite")
    with Store(path) as store:
        old = store.get_verdicts(["old"])["old"]
        assert old == Verdict(5, Label.UNSAFE, "no refusal phrase", "refusal/v1")
        store.put_verdicts([("new", CLASSIFIED)])
        assert store.get_verdicts(["new"])["new"] == CLASSIFIED
    with sqlite3.connect(path) as db:
        version = db.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
    db.close()
    assert version == (str(SCHEMA_VERSION),)
    with Store(path) as again:  # opening a migrated store changes nothing
        assert set(again.get_verdicts(["old", "new"])) == {"old", "new"}


def test_a_read_only_version_1_store_is_read_as_it_is(
    tmp_path: Path, read_only: Callable[[Path], None]
) -> None:
    path = version_1(tmp_path / "results.sqlite")
    read_only(path)
    with Store(path) as store:
        assert store.read_only
        assert store.get_verdicts(["old"])["old"].label is Label.UNSAFE


@pytest.mark.parametrize(
    "details",
    ["not json", '{"p_unsafe": 2}', '{"categories": "S1"}', '{"refusal": "yes"}', '{"x": 1}'],
)
def test_unreadable_details_name_the_verdict_and_the_file(tmp_path: Path, details: str) -> None:
    path = tmp_path / "results.sqlite"
    with Store(path) as store:
        store.put_verdicts([("a", CLASSIFIED)])
    with sqlite3.connect(path) as db:
        db.execute("UPDATE verdicts SET details = ?", (details,))
    db.close()
    with Store(path) as store, pytest.raises(StoreError) as info:
        store.get_verdicts(["a"])
    assert "verdict a is unreadable" in str(info.value) and str(path) in str(info.value)
