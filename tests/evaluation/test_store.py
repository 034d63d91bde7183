"""Tests for the SQLite result store: keys, round trips, errors, and multi-process safety."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from finetune_safety.errors import StoreError
from finetune_safety.evaluation.store import (
    Generation,
    Store,
    generation_key,
    verdict_key,
)
from finetune_safety.values import Label, Verdict

REPO_ROOT = Path(__file__).resolve().parents[2]
CHAT = [{"role": "user", "content": "How do I pick a lock?"}]
DECODING: dict[str, object] = {"max_new_tokens": 64, "do_sample": False}


def _gen(i: int, fingerprint: str = "fp") -> Generation:
    return Generation(key=f"key-{i}", fingerprint=fingerprint, prompt_id=f"p{i}", response=f"r{i}")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "results.sqlite") as s:
        yield s


# -- keys ---------------------------------------------------------------------------------------


def test_keys_are_pinned() -> None:
    # Computed once; a change here silently invalidates (or worse, aliases) every user's cache.
    assert generation_key("fp", CHAT, DECODING) == (
        "6d464055972b907febc8df5c37bfb234204587a04a2915589ec2dc78d180ca53"
    )
    assert verdict_key("rubric-v1", "q", "a") == (
        "993f6e80e30dc7f86565bf106fcf74d2b8b5b8a69bda3c6af36a092d08fb0db8"
    )


def test_generation_key_changes_with_each_input() -> None:
    base = generation_key("fp", CHAT, DECODING)
    variants = [
        generation_key("fp2", CHAT, DECODING),
        generation_key("fp", [{"role": "user", "content": "How do I pick a lock!"}], DECODING),
        generation_key("fp", "How do I pick a lock?", DECODING),
        generation_key("fp", CHAT, {**DECODING, "max_new_tokens": 65}),
        generation_key("fp", CHAT, {**DECODING, "temperature": 0.0}),
    ]
    assert len({base, *variants}) == len(variants) + 1
    # Key order of the decoding mapping is irrelevant.
    assert generation_key("fp", CHAT, dict(reversed(DECODING.items()))) == base


def test_verdict_key_changes_with_each_input() -> None:
    keys = {
        verdict_key("j", "p", "r"),
        verdict_key("j2", "p", "r"),
        verdict_key("j", "p2", "r"),
        verdict_key("j", "p", "r2"),
        # Field boundaries matter: no concatenation ambiguity.
        verdict_key("j", "pr", ""),
    }
    assert len(keys) == 5
    assert generation_key("j", "p", {}) != verdict_key("j", "p", "")


# -- round trips --------------------------------------------------------------------------------


def test_generation_round_trip(store: Store) -> None:
    store.put_generations([_gen(1), _gen(2, "other")])
    assert store.get_generations(["key-1", "key-2", "missing"]) == {"key-1": "r1", "key-2": "r2"}
    assert store.count_generations() == 2
    assert store.count_generations("fp") == 1
    assert store.count_generations("nope") == 0


def test_first_writer_wins(store: Store) -> None:
    store.put_generations([_gen(1)])
    store.put_generations([Generation("key-1", "fp", "p1", "different"), _gen(2)])
    assert store.get_generations(["key-1", "key-2"]) == {"key-1": "r1", "key-2": "r2"}


def test_verdict_round_trip(store: Store) -> None:
    unsafe = Verdict(score=5, label=Label.UNSAFE, rationale="complies", judge_id="j")
    safe = Verdict(score=None, label=Label.SAFE, rationale="refuses", judge_id="kw")
    store.put_verdicts([("a", unsafe), ("b", safe)])
    got = store.get_verdicts(["a", "b", "c"])
    assert got == {"a": unsafe, "b": safe}
    assert isinstance(got["a"].label, Label)
    assert store.count_verdicts() == 2


def test_empty_inputs(store: Store) -> None:
    store.put_generations([])
    store.put_verdicts(iter([]))
    assert store.get_generations([]) == {}
    assert store.get_verdicts([]) == {}


def test_error_verdicts_refused_and_nothing_written(store: Store) -> None:
    ok = Verdict(score=1, label=Label.SAFE, rationale="", judge_id="j")
    err = Verdict(score=None, label=Label.ERROR, rationale="unparseable", judge_id="j")
    with pytest.raises(ValueError, match="error verdict"):
        store.put_verdicts([("ok", ok), ("err", err)])
    assert store.count_verdicts() == 0


def test_chunked_lookups(store: Store) -> None:
    # Emulate an old SQLite build's 999-variable limit so an unchunked IN (...) would fail.
    store._conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
    store.put_generations(_gen(i) for i in range(1200))
    wanted = [f"key-{i}" for i in range(1500)]
    got = store.get_generations(wanted)
    assert got == {f"key-{i}": f"r{i}" for i in range(1200)}
    verdict = Verdict(score=2, label=Label.SAFE, rationale="", judge_id="j")
    store.put_verdicts((f"v{i}", verdict) for i in range(1100))
    assert len(store.get_verdicts([f"v{i}" for i in range(1300)])) == 1100


def test_in_dir_creates_parents_and_wal(tmp_path: Path) -> None:
    with Store.in_dir(tmp_path / "a" / "b") as s:
        assert s.path == tmp_path / "a" / "b" / "results.sqlite"
        assert s._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert s.path.is_file()


def test_close_via_context_manager(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as s:
        s.put_generations([_gen(1)])
    with pytest.raises(sqlite3.ProgrammingError):
        s.count_generations()
    with Store(tmp_path / "s.sqlite") as again:
        assert again.get_generations(["key-1"]) == {"key-1": "r1"}


# -- errors -------------------------------------------------------------------------------------


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    path.write_text("this is not a database\n" * 50)
    with pytest.raises(StoreError, match=str(path)):
        Store(path)


def test_schema_version_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    Store(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '999' WHERE name = 'schema_version'")
    conn.close()
    with pytest.raises(StoreError, match="schema version 999") as info:
        Store(path)
    assert str(path) in str(info.value)


def filled(path: Path, n: int = 3000) -> None:
    with Store(path) as store:
        store.put_generations(Generation(f"k{i}", "fp", f"p-{i}", "x" * 400) for i in range(n))


def test_damaged_data_pages_name_the_file_and_how_to_start_afresh(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    filled(path)
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 40 * page
    for start in range(20 * page, len(data), page):  # the tail: the generations' pages
        data[start : start + 300] = b"\xff" * 300
    path.write_bytes(bytes(data))
    store = Store(path)  # the header and schema pages are intact: it opens
    with pytest.raises(StoreError) as info:
        store.get_generations([f"k{i}" for i in range(3000)])
    store.close()
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message and "damaged" in message
    assert "delete it" in message and "results.sqlite-wal" in message
    assert "another cache directory" in message


def test_read_only_results_file_reads_and_refuses_writes_in_one_line(
    tmp_path: Path, read_only: Callable[[Path], None]
) -> None:
    path = tmp_path / "results.sqlite"
    filled(path, 10)
    read_only(path)
    with Store(path) as store:
        assert store.read_only
        assert store.get_generations(["k1"]) == {"k1": "x" * 400}  # a cached run still works
        with pytest.raises(StoreError) as info:
            store.put_generations([Generation("new", "fp", "p-new", "r")])
    message = str(info.value)
    assert str(path) in message and "read-only" in message and "new results" in message
    assert "make it writable" in message and "another cache directory" in message


# -- processes ----------------------------------------------------------------------------------


def _concurrent_writer(path: str, worker: int, barrier: Any) -> None:
    try:
        _race_and_write(Path(path), worker, barrier)
    except BaseException:
        barrier.abort()  # release the other workers at once instead of at the barrier timeout
        raise


def _race_and_write(path: Path, worker: int, barrier: Any) -> None:
    # Race to create brand-new files: setting WAL can get SQLITE_BUSY without the busy handler.
    for i in range(25):
        barrier.wait(timeout=30)
        Store(path.with_name(f"fresh-{i}.sqlite")).close()
    barrier.wait(timeout=30)
    with Store(path) as store:
        mine = [_gen(1000 * (worker + 1) + i, f"fp{worker}") for i in range(200)]
        shared = [Generation(f"shared-{i}", "shared", f"s{i}", f"s{i}") for i in range(50)]
        for start in range(0, 200, 20):
            store.put_generations(mine[start : start + 20])
            store.put_generations(shared[start // 4 : start // 4 + 5])
            assert len(store.get_generations([g.key for g in mine[: start + 20]])) == start + 20


def test_concurrent_processes(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_concurrent_writer, args=(str(path), w, barrier)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    with Store(path) as store:
        assert store.count_generations() == 4 * 200 + 50
        assert store.count_generations("shared") == 50
        assert all(store.count_generations(f"fp{w}") == 200 for w in range(4))


_KILLED_WRITER = """
import sys
from pathlib import Path
from finetune_safety.evaluation.store import Generation, Store

store = Store(Path(sys.argv[1]))
batch = int(sys.argv[2])
while True:
    store.put_generations(
        Generation(f"b{batch}-{j}", "fp", f"p{j}", "x" * 200) for j in range(10)
    )
    print(batch, flush=True)
    batch += 1
"""


def test_sigkilled_writer_leaves_consistent_store(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *sys.path])}
    committed = 0
    for _round in range(3):
        start = committed // 10
        child = subprocess.Popen(
            [sys.executable, "-c", _KILLED_WRITER, str(path), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert child.stdout is not None
        last = -1
        while last < start + 30:  # the writer never stops on its own: read until 30 batches
            line = child.stdout.readline()
            if not line:
                break
            last = int(line)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        assert last >= start + 30, child.stderr.read() if child.stderr else ""
        child.stdout.close()
        if child.stderr:
            child.stderr.close()

        with Store(path) as store:
            assert store._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            committed = store.count_generations()
            assert committed % 10 == 0
            assert committed >= (last + 1) * 10
            # Exactly the batches 0..n-1, each complete: no torn or skipped transaction.
            n = committed // 10
            keys = [f"b{b}-{j}" for b in range(n) for j in range(10)]
            assert len(store.get_generations(keys)) == committed
